"""The local pool's shared-memory transport (docs/decisions.md#D118): frames arrive equal and uncopied, segments
are reused, and nothing stays in /dev/shm after a run, a worker's error, an abandoned run or a killed worker."""

from __future__ import annotations

import mmap
import os
import subprocess
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pandas as pd
import pytest

from kallos.errors import DataValidationError
from kallos.scale import LocalExecutor, shared

pytestmark = pytest.mark.skipif(not shared.available(), reason="needs /dev/shm")

OURS = f"{shared.PREFIX}{os.getpid()}-"


def ours() -> list[str]:
    """This test process's segments (every executor's names start with the parent's pid)."""
    return [n for n in os.listdir(shared.SHM_DIR) if n.startswith(OURS)]


def inodes() -> set[int]:
    found = set()
    for name in ours():
        try:
            found.add(os.stat(os.path.join(shared.SHM_DIR, name)).st_ino)
        except FileNotFoundError:  # renamed or unlinked meanwhile
            pass
    return found


def batch(i: int, n: int = 500) -> pd.DataFrame:
    source = np.where(np.arange(n) % 7 == 0, None, np.where(np.arange(n) % 2 == 0, "candles", "approx"))
    return pd.DataFrame(
        {
            "coin_id": np.repeat([f"coin-{i}-a", f"coin-{i}-b"], n // 2),
            "date": pd.date_range("2020-01-01", periods=n).to_numpy().astype("datetime64[us]"),
            "source": pd.array(source, dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
            "close": np.linspace(1.0, 2.0, n) * (i + 1),
            "volume": np.arange(n, dtype=np.int64),
            "flag": np.arange(n) % 3 == 0,
            "label": pd.Categorical(np.where(np.arange(n) % 2 == 0, "x", "y")),
            "unique": [f"u{j}" for j in range(n)],
        }
    )


def compute(frame: pd.DataFrame, scale: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Like the indicator engine: a float block from `shared.empty` wrapped without a copy, plus input columns."""
    block = shared.empty((3, len(frame)))
    block[0] = frame["close"].to_numpy() * scale
    block[1] = frame["volume"].to_numpy() + 0.5
    block[2] = np.nan
    out = pd.DataFrame(block.T, columns=["a", "b", "c"], copy=False)
    for pos, name in enumerate(["coin_id", "date", "source", "flag", "label", "unique"]):
        out.insert(pos, name, frame[name].array)
    return out, {"rows": len(frame)}


def fail_on_three(frame: pd.DataFrame) -> pd.DataFrame:
    shared.empty((4, len(frame)))  # a segment the failing task created
    if frame["close"].iloc[0] == 4.0:
        raise DataValidationError("bad batch")
    return frame


def die_on_two(frame: pd.DataFrame) -> pd.DataFrame:
    shared.empty((4, len(frame)))
    if frame["close"].iloc[0] == 3.0:
        os._exit(3)  # a worker killed mid-task (as by the OOM killer)
    return frame


def _root(values: np.ndarray) -> object:
    while isinstance(values, np.ndarray) and values.base is not None:
        values = values.base
    return values


def test_frames_cross_unchanged_and_results_are_mapped_not_copied() -> None:
    want = [compute(batch(i), 2.0) for i in range(6)]
    with LocalExecutor(2) as ex:
        assert ex.shared_memory
        got = list(ex.map_batches(compute, (batch(i) for i in range(6)), 2.0))
        for (frame, extra), (want_frame, want_extra) in zip(got, want, strict=True):
            pd.testing.assert_frame_equal(frame, want_frame)
            assert extra == want_extra
            # The float columns are one block over the worker's shared segment, not a copy of it.
            assert isinstance(_root(frame["a"].to_numpy()), mmap.mmap)
            assert _root(frame["a"].to_numpy()) is _root(frame["c"].to_numpy())
    assert ours() == []


def passthrough(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def test_empty_frames_and_other_indexes_cross_too() -> None:
    frames = [batch(0).iloc[:0], batch(1).set_index("date"), pd.DataFrame(), batch(2).iloc[::2]]
    with LocalExecutor(2) as ex:
        got = list(ex.map_batches(passthrough, frames))
    for frame, want in zip(got, frames, strict=True):
        pd.testing.assert_frame_equal(frame, want)
    assert ours() == []


def test_segments_are_reused_and_bounded_and_gone_after_close() -> None:
    created: set[int] = set()  # inodes: a reused segment is renamed, not recreated
    with LocalExecutor(2) as ex:
        for i, (frame, _) in enumerate(ex.map_batches(compute, (batch(i % 3) for i in range(30)), 1.0)):
            assert len(frame) == 500
            created.update(inodes())
            assert len(ours()) <= 6 * 2 + 4 * 4 + 2, "segments pile up"
            del frame
            if i == 29:
                break
        assert len(created) < 30, "every batch created new segments: none was reused"
        assert any("free-" in name for name in ours()), "no segment kept for reuse"
    assert ours() == []


def test_a_failing_worker_and_an_abandoned_run_leave_no_segment() -> None:
    with LocalExecutor(2) as ex:
        with pytest.raises(DataValidationError, match="bad batch"):
            list(ex.map_batches(fail_on_three, (batch(i) for i in range(8))))
        results = ex.map_batches(compute, (batch(i) for i in range(8)), 1.0)
        next(results)
        results.close()  # the consumer stops: tasks in flight finish and their results are released
        kept = list(ex.map_batches(compute, [batch(1), batch(2)], 1.0))  # the pool still works
    assert len(kept) == 2 and ours() == []


def test_a_killed_worker_leaves_no_segment() -> None:
    with LocalExecutor(2) as ex:
        with pytest.raises(BrokenProcessPool):
            list(ex.map_batches(die_on_two, (batch(i) for i in range(6))))
    assert ours() == []


def test_sweep_removes_the_segments_of_dead_processes_only() -> None:
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    stale = os.path.join(shared.SHM_DIR, f"{shared.PREFIX}{dead}-0000-leftover")
    live = os.path.join(shared.SHM_DIR, f"{OURS}0000-live")
    for path in (stale, live):
        with open(path, "wb") as f:
            f.write(b"x")
    try:
        assert shared.sweep() >= 1
        assert not os.path.exists(stale) and os.path.exists(live)
    finally:
        for path in (stale, live):
            if os.path.exists(path):
                os.unlink(path)


def test_without_shared_memory_frames_are_pickled() -> None:
    with LocalExecutor(2, shared_memory=False) as ex:
        assert not ex.shared_memory
        got = list(ex.map_batches(compute, [batch(0), batch(1)], 3.0))
    for (frame, _), i in zip(got, range(2), strict=True):
        pd.testing.assert_frame_equal(frame, compute(batch(i), 3.0)[0])
    assert ours() == []


def test_the_indicator_batch_with_a_failing_coin_through_shared_memory() -> None:
    """The step's batch function: the engine's block written in the worker's segment, and the per-coin
    fallback (one coin's bars are invalid) allocating a segment per coin, give what they give in-process."""
    from kallos.indicators.step import _compute_batch

    rng = np.random.default_rng(7)
    frames = []
    for c in range(3):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, 300)))
        frames.append(
            pd.DataFrame(
                {
                    "coin_id": f"coin-{c}",
                    "date": pd.date_range("2022-01-01", periods=300),
                    "open": close,
                    "high": close * 1.02,
                    "low": close * 0.98,
                    "close": close,
                    "volume": rng.lognormal(10, 1, 300),
                }
            )
        )
    good = pd.concat(frames, ignore_index=True)
    bad = good.copy()
    bad.loc[bad["coin_id"] == "coin-1", "close"] = -1.0
    batches = [good, bad, good]
    want = [_compute_batch(b, False) for b in batches]
    with LocalExecutor(2, preload=["kallos.indicators.step"]) as ex:
        got = list(ex.map_batches(_compute_batch, batches, False))
    assert want[1][1].keys() == {"coin-1"}
    for (frame, failed), (want_frame, want_failed) in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(frame, want_frame)
        assert failed == want_failed
    assert isinstance(_root(got[0][0]["ema_10"].to_numpy()), mmap.mmap)
    assert ours() == []
