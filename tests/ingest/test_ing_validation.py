"""The pure validation: every deviation is an event with the right action and reason; good rows still load."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.ingest.validation import missing_days, validate_market_rows, validate_sweep

from .validation_cases import GOLDEN, results, sweep_case


def rows(*specs: tuple) -> pd.DataFrame:
    """(snapped_at, close, market_cap, volume) tuples -> an input frame."""
    return pd.DataFrame(specs, columns=["snapped_at", "close", "market_cap", "volume"])


def reasons(events: pd.DataFrame) -> set[tuple[str, str, str]]:
    return {
        (pd.Timestamp(d).date().isoformat(), a, r)
        for d, a, r in zip(events["date"], events["action"], events["reason"], strict=True)
    }


def test_clean_batch_passes_unchanged() -> None:
    frame = rows(
        ("2024-01-01 00:00:00 UTC", 100.0, 1e9, 5e6),
        ("2024-01-02 00:00:00 UTC", 101.0, 1.01e9, 6e6),
    )
    good, events = validate_market_rows(frame, coin_id="bitcoin", source="csv")
    assert events.empty
    assert good["date"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert good["date"].dtype == "datetime64[ns]"
    assert good["close"].tolist() == [100.0, 101.0]
    assert good["coin_id"].unique().tolist() == ["bitcoin"]


def test_bad_rows_are_quarantined_and_the_rest_load() -> None:
    frame = rows(
        ("2024-01-01 00:00:00 UTC", 100.0, 1e9, 5e6),
        ("2024-01-02 00:00:00 UTC", None, 1e9, 5e6),
        ("2024-01-03 00:00:00 UTC", 0.0, 1e9, 5e6),
        ("2024-01-04 00:00:00 UTC", -3.0, 1e9, 5e6),
        ("2024-01-05 00:00:00 UTC", float("inf"), 1e9, 5e6),
        ("not a time", 100.0, 1e9, 5e6),
        ("2024-01-06 00:00:00 UTC", 102.0, 1e9, 5e6),
    )
    good, events = validate_market_rows(frame, coin_id="c", source="csv")
    assert good["date"].dt.day.tolist() == [1, 6]
    got = reasons(events)
    assert ("2024-01-02", "quarantined", "null_close") in got
    assert ("2024-01-03", "quarantined", "non_positive_close") in got
    assert ("2024-01-04", "quarantined", "non_positive_close") in got
    assert ("2024-01-05", "quarantined", "non_finite_close") in got
    assert ("1970-01-01", "quarantined", "unparseable_timestamp") in got
    # quarantined days are not reported again as missing days
    assert not any(r == "missing_day" for _, _, r in got)
    raw = json.loads(events.loc[events["reason"] == "non_positive_close", "raw"].iloc[0])
    assert raw["close"] in (0.0, -3.0)


def test_market_cap_zero_or_nan_is_unknown_and_volume_zero_is_flagged() -> None:
    frame = rows(
        ("2024-01-01 00:00:00 UTC", 1.0, 0.0, 0.0),
        ("2024-01-02 00:00:00 UTC", 1.0, np.nan, np.nan),
        ("2024-01-03 00:00:00 UTC", 1.0, -5.0, -1.0),
    )
    good, events = validate_market_rows(frame, coin_id="c", source="csv")
    assert good["market_cap"].isna().all()
    assert good["volume"].tolist()[0] == 0.0 and np.isnan(good["volume"].iloc[2])
    got = reasons(events)
    assert {
        ("2024-01-01", "nulled", "zero_market_cap"),
        ("2024-01-02", "nulled", "missing_market_cap"),
        ("2024-01-03", "nulled", "negative_market_cap"),
        ("2024-01-01", "flagged", "zero_volume"),
        ("2024-01-02", "flagged", "missing_volume"),
        ("2024-01-03", "nulled", "negative_volume"),
    } <= got


def test_off_midnight_is_floored_and_duplicates_keep_the_last_row() -> None:
    frame = rows(
        ("2017-06-06 23:29:55 UTC", 2903.44, 4.7e10, 1.2e9),
        ("2017-06-07 00:00:00 UTC", 2700.0, 4.4e10, 1.0e9),
        ("2017-06-07 00:05:18 UTC", 2701.0, 4.4e10, 1.0e9),
    )
    good, events = validate_market_rows(frame, coin_id="bitcoin", source="csv")
    assert good["date"].dt.day.tolist() == [6, 7]
    assert good["close"].tolist() == [2903.44, 2701.0]
    assert good["snapped_at"].iloc[0] == pd.Timestamp("2017-06-06 23:29:55", tz="UTC")
    got = reasons(events)
    assert ("2017-06-06", "floored", "off_midnight") in got
    assert ("2017-06-07", "floored", "off_midnight") in got
    assert ("2017-06-07", "deduplicated", "duplicate_date") in got


def test_out_of_order_rows_are_sorted_and_flagged() -> None:
    frame = rows(
        ("2024-01-02 00:00:00 UTC", 2.0, 1.0, 1.0),
        ("2024-01-01 00:00:00 UTC", 1.9, 1.0, 1.0),
        ("2024-01-03 00:00:00 UTC", 2.1, 1.0, 1.0),
    )
    good, events = validate_market_rows(frame, coin_id="c", source="csv")
    assert good["close"].tolist() == [1.9, 2.0, 2.1]
    assert ("2024-01-01", "flagged", "out_of_order") in reasons(events)


def test_jumps_pegs_and_missing_days_are_flagged_across_the_batch_boundary() -> None:
    frame = rows(
        ("2024-01-03 00:00:00 UTC", 4.0, 1.0, 1.0),  # x4 vs the stored previous close 1.0
        ("2024-01-04 00:00:00 UTC", 1.2, 1.0, 1.0),  # /3.33
        ("2024-01-07 00:00:00 UTC", 1.0, 1.0, 1.0),  # 2 missing days
    )
    good, events = validate_market_rows(
        frame,
        coin_id="tether",
        source="csv",
        prev_close=1.0,
        prev_date=dt.date(2024, 1, 1),
        stablecoin=True,
        known_missing=[dt.date(2024, 1, 5)],
    )
    got = reasons(events)
    assert ("2024-01-03", "flagged", "price_jump") in got
    assert ("2024-01-04", "flagged", "price_jump") in got
    assert ("2024-01-03", "flagged", "off_peg") in got
    assert ("2024-01-04", "flagged", "off_peg") in got
    assert ("2024-01-07", "flagged", "off_peg") not in got
    assert ("2024-01-02", "flagged", "missing_day") in got  # between the stored day and the batch
    assert ("2024-01-06", "flagged", "missing_day") in got
    assert ("2024-01-05", "flagged", "missing_day") not in got  # already known
    assert len(good) == 3


def test_candles_breaking_ohlc_relations_are_nulled_and_the_close_kept() -> None:
    frame = pd.DataFrame(
        {
            "snapped_at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"], utc=True),
            "close": [10.0, 11.0, 12.0, 13.0],
            "market_cap": 1e6,
            "volume": 1e3,
            "open": [9.0, 10.0, 11.0, np.nan],
            "high": [10.5, 10.9, 12.5, np.nan],  # day 2: high below the chart close
            "low": [8.0, 9.0, -1.0, np.nan],  # day 3: non-positive low
        }
    )
    good, events = validate_market_rows(frame, coin_id="c", source="x")
    assert good["close"].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert good["ohlc_source"].iloc[0] == "candles" and good["ohlc_source"].iloc[1:].isna().all()
    assert good.loc[1:, ["open", "high", "low"]].isna().all().all()
    got = reasons(events)
    assert ("2024-01-02", "nulled", "ohlc_relation") in got
    assert ("2024-01-03", "nulled", "non_positive_ohlc") in got
    assert not any(d == "2024-01-04" for d, _, _ in got)  # no candle is not an error


def test_ohlc_tolerance_is_relative() -> None:
    frame = pd.DataFrame(
        {
            "snapped_at": ["2024-01-01T00:00:00Z"],
            "close": [100.0],
            "open": [99.0],
            "high": [100.0 * (1 - 5e-10)],
            "low": [98.0],
        }
    )
    good, events = validate_market_rows(frame, coin_id="c", source="x")
    assert events.empty and good["ohlc_source"].iloc[0] == "candles"


def test_epoch_milliseconds_and_aware_datetimes_are_read() -> None:
    ms = pd.DataFrame({"snapped_at": [1367107200000, 1367193600000], "close": [135.3, 141.96]})
    good, _ = validate_market_rows(ms, coin_id="bitcoin", source="x")
    assert good["date"].dt.strftime("%Y-%m-%d").tolist() == ["2013-04-28", "2013-04-29"]


def test_missing_days_helper() -> None:
    assert missing_days(pd.to_datetime(["2024-01-01", "2024-01-04"])) == [
        pd.Timestamp("2024-01-02"),
        pd.Timestamp("2024-01-03"),
    ]
    assert missing_days([], prev_date=dt.date(2024, 1, 1)) == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=60),
            st.one_of(st.none(), st.floats(min_value=-10, max_value=1e6), st.just(float("nan"))),
            st.one_of(st.none(), st.floats(min_value=-1, max_value=1e12)),
        ),
        max_size=40,
    )
)
def test_nothing_is_silently_dropped(specs: list[tuple]) -> None:
    """Every input row is either loaded or named by a quarantine/dedup event; output dates are unique and
    sorted.
    """
    base = pd.Timestamp("2024-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "snapped_at": [base + pd.Timedelta(hours=6 * h) for h, _, _ in specs],
            "close": [c for _, c, _ in specs],
            "market_cap": [m for _, _, m in specs],
        }
    )
    good, events = validate_market_rows(frame, coin_id="c", source="x")
    if frame.empty:
        assert good.empty and events.empty
        return
    input_days = set(frame["snapped_at"].dt.floor("D").dt.tz_localize(None))
    dropped = events[events["action"].isin(["quarantined", "deduplicated"])]
    assert set(good["date"]) | set(dropped["date"]) == input_days
    n_dedup = int((events["action"] == "deduplicated").sum())
    assert len(good) + n_dedup <= len(frame)
    assert good["date"].is_unique and good["date"].is_monotonic_increasing
    assert (good["close"] > 0).all()
    assert not (good["market_cap"] <= 0).any()


def test_every_reason_code_keeps_its_recorded_result() -> None:
    """Good rows and events (raw and detail included) for inputs raising every reason code are what the
    validation returned before the rule table (docs/decisions.md#D44)."""
    assert results() == json.loads(GOLDEN.read_text())


def test_the_sweep_and_the_per_coin_validation_agree_on_one_row() -> None:
    sweep, kwargs = sweep_case()
    good, events = validate_sweep(sweep, **kwargs)
    key = ["coin_id", "date", "source", "field", "reason", "action", "raw", "detail"]
    for coin in sweep["coin_id"]:
        one_good, one_events = validate_market_rows(
            sweep[sweep["coin_id"] == coin].drop(columns=["coin_id"]),
            coin_id=coin,
            source=kwargs["source"],
            prev_close=kwargs["prev_close"].get(coin),
            stablecoin=coin in kwargs["stablecoins"],
        )
        pd.testing.assert_frame_equal(
            good[good["coin_id"] == coin].reset_index(drop=True), one_good, check_dtype=False
        )
        mine = events[events["coin_id"] == coin].sort_values(key[1:5]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[key], one_events[key], check_dtype=False)
