"""The executors: same results in the same order, bounded read-ahead, errors and settings."""

from __future__ import annotations

from collections.abc import Iterator

import distributed
import pandas as pd
import pytest

from kallos.errors import ConfigError, DataValidationError
from kallos.scale import DaskExecutor, LocalExecutor, ThreadExecutor, get_executor
from kallos.settings import load_settings


def double_frame(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    return frame.assign(x=frame["x"] * factor)


def fail_on_three(n: int) -> int:
    if n == 3:
        raise DataValidationError("bad batch", batch=n)
    return n


def frames(n: int) -> list[pd.DataFrame]:
    return [pd.DataFrame({"batch": i, "x": [float(i), i + 0.5]}) for i in range(n)]


class Counting:
    """An iterator that records how many items the executor has pulled."""

    def __init__(self, items: list[pd.DataFrame]) -> None:
        self.items = items
        self.pulled = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for item in self.items:
            self.pulled += 1
            yield item


def expected(n: int) -> list[pd.DataFrame]:
    return [double_frame(f, 2.0) for f in frames(n)]


@pytest.mark.parametrize("executor", [LocalExecutor, ThreadExecutor])
@pytest.mark.parametrize("workers", [1, 2])
def test_local_executor_keeps_order_and_reads_ahead_at_most_two_batches_per_worker(
    executor: type[LocalExecutor | ThreadExecutor], workers: int
) -> None:
    source = Counting(frames(12))
    with executor(workers) as ex:
        results = ex.map_batches(double_frame, source, 2.0)
        first = next(results)
        assert source.pulled <= 2 * workers
        got = [first, *results]
        with pytest.raises(DataValidationError, match="bad batch"):
            list(ex.map_batches(fail_on_three, range(6)))
    assert len(got) == 12
    for a, b in zip(got, expected(12), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_threads_are_chosen_by_the_setting() -> None:
    with get_executor(load_settings(executor="threads", workers=3)) as ex:
        assert isinstance(ex, ThreadExecutor) and ex.workers == 3


def test_dask_executor_equals_local_and_bounds_read_ahead(dask_address: str) -> None:
    source = Counting(frames(12))
    with get_executor(load_settings(executor="dask", dask_scheduler=dask_address)) as ex:
        assert isinstance(ex, DaskExecutor) and ex.workers == 2
        results = ex.map_batches(double_frame, source, 2.0)
        first = next(results)
        assert source.pulled <= 2 * 2
        got = [first, *results]
    with LocalExecutor(1) as local:
        want = list(local.map_batches(double_frame, frames(12), 2.0))
    assert len(got) == len(want) == 12
    for a, b in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_closing_a_remote_executor_leaves_the_cluster_running(dask_address: str, dask_client) -> None:
    with DaskExecutor(dask_address) as ex:
        assert list(ex.map_batches(abs, [-1, -2])) == [1, 2]
    assert len(dask_client.nthreads()) == 2
    with DaskExecutor(dask_address) as ex:  # usable again
        assert list(ex.map_batches(abs, [-3])) == [3]


def test_a_failing_batch_raises_its_own_error_through_dask(dask_address: str) -> None:
    with DaskExecutor(dask_address) as ex:
        with pytest.raises(DataValidationError, match="bad batch"):
            list(ex.map_batches(fail_on_three, range(6)))


@pytest.mark.slow  # starts and stops a cluster of its own
def test_without_a_scheduler_address_a_local_cluster_is_started_and_closed() -> None:
    ex = get_executor(load_settings(executor="dask", workers=1))
    try:
        assert isinstance(ex, DaskExecutor) and ex.address is None
        cluster = ex._cluster
        assert isinstance(cluster, distributed.LocalCluster)
        assert list(ex.map_batches(abs, [-4, 5])) == [4, 5]
    finally:
        ex.close()
    assert cluster.status.name == "closed"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, dask_address: str) -> None:
    assert isinstance(get_executor(load_settings()), LocalExecutor)
    monkeypatch.setenv("KALLOS_EXECUTOR", "DASK")
    monkeypatch.setenv("KALLOS_DASK_SCHEDULER", dask_address)
    settings = load_settings()
    assert (settings.executor, settings.dask_scheduler) == ("dask", dask_address)
    with get_executor(settings) as ex:
        assert isinstance(ex, DaskExecutor) and ex.address == dask_address
    monkeypatch.setenv("KALLOS_EXECUTOR", "spark")
    with pytest.raises(ConfigError, match="KALLOS_EXECUTOR"):
        load_settings()


def test_an_unreachable_scheduler_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        DaskExecutor("tcp://127.0.0.1:9", connect_timeout=1)
    assert info.value.context["setting"] == "KALLOS_DASK_SCHEDULER"
