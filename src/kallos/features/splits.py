"""`time_splits`: walk-forward train/test date ranges with purging and an embargo (docs/features.md).

A row at t carries labels that look `horizon` bars ahead, so a training row whose label window [t, t+horizon]
reaches into the test range is purged, and `embargo` bars after each test range are kept out of later training
(docs/decisions.md#D74).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kallos.errors import InputError


@dataclass(frozen=True)
class TimeSplit:
    """One fold: train on dates in any of `train` (inclusive ranges), test on [test_start, test_end]."""

    fold: int
    train: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def train_mask(self, dates: pd.Series) -> pd.Series:
        mask = pd.Series(False, index=dates.index)
        for lo, hi in self.train:
            mask |= (dates >= lo) & (dates <= hi)
        return mask

    def test_mask(self, dates: pd.Series) -> pd.Series:
        return (dates >= self.test_start) & (dates <= self.test_end)


def time_splits(
    frame: pd.DataFrame,
    n_splits: int,
    *,
    horizon: int,
    embargo: int = 0,
    step_days: int = 1,
    timeframe: str | None = None,
) -> Iterator[TimeSplit]:
    """Cut the frame's dates into `n_splits + 1` equal blocks; fold k tests on block k+1 and trains on every
    earlier date whose label window ends before the test starts (walk-forward: never on the future).

    With `horizon` h and `embargo` e (both in bars of `step_days` days), a training date t is kept only if
    t + h < test_start; the e bars after a test range are also dropped from the training of later folds (they
    sit after the previous test, and a model tuned there must not see rows correlated with it). A frame keyed by
    `hour` (`timeframe="1h"`, inferred from the column) is split on its hours, h and e counting hours; on 1w the
    bar is 7 days (docs/decisions.md#D79)."""
    if n_splits < 1:
        raise InputError("n_splits must be at least 1", input="n_splits")
    if horizon < 0 or embargo < 0:
        raise InputError("horizon and embargo must not be negative", input="horizon")
    if timeframe is None:
        timeframe = "1h" if "hour" in frame.columns and "date" not in frame.columns else None
    hourly = timeframe == "1h"
    if timeframe not in (None, "1h", "1d", "1w"):
        raise InputError(f"timeframe {timeframe!r} is not available; accepted: 1h, 1d, 1w", input="timeframe")
    times = pd.to_datetime(frame["hour" if hourly else "date"])
    tz = times.dt.tz
    if tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    days = np.unique(times.to_numpy(dtype="datetime64[h]" if hourly else "datetime64[D]"))
    if len(days) < n_splits + 1:
        raise InputError(f"{len(days)} distinct dates cannot make {n_splits} splits", input="n_splits")
    blocks = np.array_split(days, n_splits + 1)
    bar = np.timedelta64(1, "h") if hourly else np.timedelta64(7 if timeframe == "1w" else step_days, "D")
    for k in range(1, n_splits + 1):
        test = blocks[k]
        test_start, test_end = test[0], test[-1]
        allowed = days[days + horizon * bar < test_start]
        for prev in blocks[1:k]:  # the embargo after every earlier test block
            allowed = allowed[~((allowed > prev[-1]) & (allowed <= prev[-1] + embargo * bar))]
        if not len(allowed):
            continue
        ranges = tuple((_stamp(lo, tz), _stamp(hi, tz)) for lo, hi in _ranges(allowed, bar))
        yield TimeSplit(k, ranges, _stamp(test_start, tz), _stamp(test_end, tz))


def _stamp(value: object, tz: object) -> pd.Timestamp:
    """A bound in the frame's own time zone (UTC for an `hour` column), so the masks compare like with like."""
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return stamp.tz_localize("UTC").tz_convert(tz) if tz is not None else stamp


def _ranges(days: np.ndarray, bar: np.timedelta64) -> tuple[tuple[pd.Timestamp, pd.Timestamp], ...]:
    """Consecutive runs of allowed days as inclusive ranges."""
    breaks = np.flatnonzero(np.diff(days) > bar) + 1
    return tuple((pd.Timestamp(r[0]), pd.Timestamp(r[-1])) for r in np.split(days, breaks))
