"""Scale-out: run the indicator and signal steps' per-batch compute locally or on a Dask cluster.

from kallos.scale import get_executor
with get_executor(settings) as ex:      # KALLOS_EXECUTOR=local|threads|dask, KALLOS_DASK_SCHEDULER=tcp://host:8786
    results = list(ex.map_batches(fn, batches))
"""

from __future__ import annotations

from kallos.scale.executor import (
    DaskExecutor,
    Executor,
    LocalExecutor,
    ThreadExecutor,
    default_workers,
    get_executor,
)

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "ThreadExecutor", "default_workers", "get_executor"]
