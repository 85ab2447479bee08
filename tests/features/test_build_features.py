"""`build_features`: point in time (the future corrupted changes nothing up to t), labels, ranks, weights, names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.errors import InputError
from kallos.features import PANDAS_TA, build_features, label_columns
from kallos.features.frame import drifted_weights, rank_by_time

from .feature_frames import alt, bars, constituents, corrupt_after

HORIZONS = (1, 7, 30)


def features(b: pd.DataFrame, **kw: object) -> pd.DataFrame:
    return build_features(b, horizons=HORIZONS, constituents=constituents(), alt=alt(), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", ["2021-02-20", "2021-04-30", "2021-09-01"])
@pytest.mark.parametrize("how", ["changed", "removed"])
def test_a_row_at_t_is_identical_when_every_later_bar_is_changed_or_removed(cut: str, how: str) -> None:
    b = bars()
    t = pd.Timestamp(cut)
    baseline = features(b)
    later = b["date"] > t
    bad = corrupt_after(b, later, how)
    corrupted = features(bad)
    labels = label_columns(HORIZONS)
    keep = lambda f: f.loc[f["date"] <= t].drop(columns=labels).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(baseline), keep(corrupted))
    # Labels whose window closes by t are unchanged too; the others are the only columns that moved.
    for h in HORIZONS:
        col = f"target_return_{h}"
        early = baseline["date"] + pd.Timedelta(days=h) <= t
        pd.testing.assert_series_equal(
            baseline.loc[early, col].reset_index(drop=True),
            corrupted.loc[corrupted["date"] + pd.Timedelta(days=h) <= t, col].reset_index(drop=True),
        )
    assert (
        not baseline.loc[baseline["date"] > t]
        .reset_index(drop=True)
        .equals(corrupted.loc[corrupted["date"] > t].reset_index(drop=True))
    )


def test_labels_equal_an_independent_forward_return_computation() -> None:
    b = bars()
    f = features(b)
    close = {(r.coin_id, r.date): r.close for r in b.itertuples()}
    for h in HORIZONS:
        expected = [
            (close[(c, d + pd.Timedelta(days=h))] / close[(c, d)] - 1.0)
            if (c, d + pd.Timedelta(days=h)) in close
            else np.nan
            for c, d in zip(f["coin_id"], f["date"], strict=True)
        ]
        np.testing.assert_allclose(f[f"target_return_{h}"], expected, rtol=1e-15, atol=0)
        np.testing.assert_allclose(f[f"target_log_return_{h}"], np.log1p(expected), rtol=1e-12)
        assert f[f"target_return_{h}"].isna().sum() >= h  # the last h bars of each coin, and the holes
    # A hole: the bar 1 day after a dropped day has no 1-day label from the day before it.
    gap = b.iloc[39]
    row = f[(f["coin_id"] == gap["coin_id"]) & (f["date"] == gap["date"])]
    assert row["target_return_1"].isna().all()


def test_rank_age_and_signals() -> None:
    f = features(bars())
    day = f[f["date"] == pd.Timestamp("2021-06-01")].set_index("coin_id")
    assert sorted(day["market_cap_rank"]) == [1.0, 2.0, 3.0]
    assert day["market_cap_rank"].idxmin() == day["market_cap"].idxmax()
    assert f.groupby("coin_id")["age_days"].min().eq(0).all()
    assert day.loc["beta", "age_days"] == (pd.Timestamp("2021-06-01") - pd.Timestamp("2021-01-16")).days
    assert f["composite_score"].between(-1, 1).all() and set(f["signal_action"]) <= {"buy", "sell", "hold"}
    fired = f.filter(like="signal_").drop(columns="signal_action")
    assert (fired != 0).to_numpy().sum() > 10


def test_drifted_weights_by_hand() -> None:
    cons = pd.DataFrame(
        {"selection_date": pd.to_datetime(["2021-01-31"] * 2), "coin_id": ["a", "b"], "weight": [0.5, 0.5]}
    )
    closes = pd.DataFrame(
        {
            "coin_id": ["a", "b", "a", "b", "a"],
            "date": pd.to_datetime(["2021-01-31", "2021-01-31", "2021-02-01", "2021-02-01", "2021-02-02"]),
            "close": [10.0, 20.0, 20.0, 20.0, 10.0],
        }
    )
    w = drifted_weights(cons, closes).set_index(["date", "coin_id"])["weight"]
    assert w[(pd.Timestamp("2021-01-31"), "a")] == 0.5
    assert w[(pd.Timestamp("2021-02-01"), "a")] == pytest.approx(2 / 3)  # 0.5*2 / (0.5*2 + 0.5*1)
    assert w[(pd.Timestamp("2021-02-02"), "b")] == pytest.approx(0.5)  # b's close carried forward


def test_index_and_alternative_columns_are_as_known_at_t() -> None:
    f = features(bars()).set_index(["coin_id", "date"])
    assert pd.isna(f.loc[("alpha", pd.Timestamp("2021-03-30")), "index_member"])  # no basket chosen yet
    assert f.loc[("alpha", pd.Timestamp("2021-03-31")), "index_weight"] == pytest.approx(0.6)
    assert not f.loc[("gamma", pd.Timestamp("2021-04-29")), "index_member"]
    assert f.loc[("gamma", pd.Timestamp("2021-04-29")), "index_weight"] == 0.0
    assert f.loc[("gamma", pd.Timestamp("2021-04-30")), "index_member"]
    w = f.xs(pd.Timestamp("2021-04-15"), level="date")["index_weight"]
    assert w.sum() == pytest.approx(1.0)
    assert np.isnan(f.loc[("alpha", pd.Timestamp("2021-02-14")), "alt_stars"])
    assert f.loc[("alpha", pd.Timestamp("2021-02-15")), "alt_stars"] == 100.0
    assert f.loc[("alpha", pd.Timestamp("2021-04-30")), "alt_stars"] == 100.0
    assert f.loc[("alpha", pd.Timestamp("2021-05-01")), "alt_stars"] == 120.0


def test_pandas_ta_naming_renames_only_the_mapped_columns() -> None:
    b = bars(260, ("alpha",))
    ours, theirs = build_features(b), build_features(b, naming="pandas-ta")
    renamed = {k: v for k, (v, _) in PANDAS_TA.items()}
    assert list(theirs.columns) == [renamed.get(c, c) for c in ours.columns]
    np.testing.assert_array_equal(theirs["RSI_14"], ours["rsi_14"])
    cols = build_features(b, naming="pandas-ta", columns=["RSI_14", "bb_width", "target_return_7"], horizons=(7,))
    assert list(cols.columns) == ["coin_id", "date", "RSI_14", "bb_width", "target_return_7"]


def test_names_match_what_pandas_ta_produces() -> None:
    """Each mapped name is one pandas-ta itself gives for the documented `df.ta` call (pandas-ta-classic)."""
    ta = pytest.importorskip("pandas_ta_classic")
    b = bars(260, ("alpha",)).drop(columns=["coin_id", "market_cap"]).set_index("date")
    produced: dict[str, set[str]] = {}
    for call in {c for _, c in PANDAS_TA.values()}:
        result = eval(f"b.ta.{call}", {"b": b, "ta": ta})  # noqa: S307 - the table's own calls
        produced[call] = set(result.columns) if isinstance(result, pd.DataFrame) else {result.name}
    for ours, (name, call) in PANDAS_TA.items():
        assert name in produced[call], (ours, name, produced[call])


def test_bad_arguments_name_the_input() -> None:
    b = bars(60, ("alpha",))
    with pytest.raises(InputError, match="accepted: 1h, 1d, 1w"):
        build_features(b, timeframe="4h")
    with pytest.raises(InputError, match="naming"):
        build_features(b, naming="talib")
    with pytest.raises(InputError, match="horizons"):
        build_features(b, horizons=(0,))
    with pytest.raises(InputError, match="close"):
        build_features(b.drop(columns=["close"]))
    with pytest.raises(InputError, match="unknown feature columns"):
        build_features(b, columns=["nope"])


@pytest.mark.parametrize("span", [50, 100_000])  # the radix path (short spans) and the lexsort path
def test_rank_by_time_equals_a_group_by_rank_with_ties_and_gaps(span: int) -> None:
    rng = np.random.default_rng(5)
    ticks = rng.integers(0, span, 5_000)
    cap = rng.integers(0, 40, 5_000).astype("float64")  # many ties
    cap[rng.random(5_000) < 0.1] = np.nan
    expected = pd.Series(cap).groupby(ticks).rank(method="min", ascending=False).to_numpy()
    np.testing.assert_array_equal(rank_by_time(ticks, cap), expected)
