"""Imported by each Dask worker process of a test cluster (``mlops.worker_preload``): registers
the tiny test models there, as a user's own preload module registers theirs."""

from tests.helpers.tiny_models import register_tiny_models

register_tiny_models()
