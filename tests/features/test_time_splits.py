"""`time_splits`: walk-forward, purged by the label horizon, embargoed after each test range."""

from __future__ import annotations

import pandas as pd
import pytest

from kallos.errors import InputError
from kallos.features import time_splits


def frame(days: int = 100) -> pd.DataFrame:
    dates = pd.date_range("2022-01-01", periods=days, freq="D")
    return pd.DataFrame({"coin_id": ["a"] * days + ["b"] * days, "date": list(dates) * 2})


def test_no_training_label_reaches_into_the_test_range_and_tests_move_forward() -> None:
    f = frame()
    splits = list(time_splits(f, 4, horizon=7, embargo=3))
    assert [s.fold for s in splits] == [1, 2, 3, 4]
    for s in splits:
        train = f.loc[s.train_mask(f["date"]), "date"]
        test = f.loc[s.test_mask(f["date"]), "date"]
        assert train.max() + pd.Timedelta(days=7) < test.min()  # purged: no label window touches the test
        assert not test.empty and not train.empty
    assert all(a.test_end < b.test_start for a, b in zip(splits, splits[1:], strict=False))
    last = splits[-1]
    train = f.loc[last.train_mask(f["date"]), "date"]
    for prev in splits[:-1]:  # the embargo after every earlier test range
        gap = train[(train > prev.test_end) & (train <= prev.test_end + pd.Timedelta(days=3))]
        assert gap.empty
    assert len(last.train) == 3  # two embargo holes; the third lies inside the purge before the last test


def test_the_documented_example() -> None:
    f = frame(20)
    s = list(time_splits(f, 1, horizon=2, embargo=1))
    assert len(s) == 1
    assert s[0].train == ((pd.Timestamp("2022-01-01"), pd.Timestamp("2022-01-08")),)
    assert (s[0].test_start, s[0].test_end) == (pd.Timestamp("2022-01-11"), pd.Timestamp("2022-01-20"))


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        list(time_splits(frame(3), 5, horizon=1))
    with pytest.raises(InputError):
        list(time_splits(frame(), 0, horizon=1))


def test_an_hourly_frame_is_split_on_its_hours() -> None:
    hours = pd.date_range("2022-01-01", periods=48, freq="h", tz="UTC")
    frame = pd.DataFrame({"coin_id": "a", "hour": hours})
    [s] = time_splits(frame, 1, horizon=3, embargo=0)
    assert s.test_start == hours[24] and s.test_end == hours[-1]
    assert s.train == ((hours[0], hours[20]),)  # hours 21-23 purged: their 3-hour labels reach the test
    assert s.train_mask(frame["hour"]).sum() == 21 and s.test_mask(frame["hour"]).sum() == 24
