"""One `distributed.LocalCluster` (2 worker processes, 1 thread each) shared by the scale tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

distributed = pytest.importorskip("distributed", reason="Dask is in the test extra: pip install -e '.[test]'")


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[object]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def dask_address(dask_cluster: object) -> str:
    return dask_cluster.scheduler_address  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def dask_client(dask_address: str) -> Iterator[object]:
    """A client of the test cluster for inspecting it (the code under test opens its own)."""
    client = distributed.Client(dask_address, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
