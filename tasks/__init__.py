"""Prefect task layer: thin wrappers over the ``fam`` library plus validation and lineage.

Nothing here is imported by ``fam/``; heavy modules (Prefect, MLflow, Great Expectations) are
imported inside the functions that need them so that ``python -m tasks.x --help`` stays fast.
"""
