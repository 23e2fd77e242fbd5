"""The task runner a flow's parallel part uses (``mlops.task_runner``)."""

from __future__ import annotations

from typing import Any

from fam.config import MlopsConfig
from fam.errors import ConfigError


def make_task_runner(cfg: MlopsConfig) -> Any:
    """Threads by default (torch releases the GIL in its kernels); or Dask: an existing cluster
    (``mlops.dask_address``) or a LocalCluster of ``max_workers`` single-threaded processes."""
    if cfg.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=cfg.max_workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            "mlops.task_runner = dask needs the prefect-dask package (pip install prefect-dask); "
            "or set mlops.task_runner: threads"
        ) from None
    preload = {"preload": list(cfg.worker_preload)} if cfg.worker_preload else {}
    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": cfg.max_workers, "threads_per_worker": 1, "processes": True, **preload}
    )
