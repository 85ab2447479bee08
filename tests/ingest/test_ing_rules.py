"""The data-quality rule table itself: every reason code declared once, each check on small frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from kallos.ingest.rules import (
    MISSING_DAY,
    NULLED,
    OHLC,
    RULES,
    SERIES_RULES,
    STAGES,
    Limits,
    Rule,
    rules_for,
)
from kallos.ingest.validation import validate_market_rows, validate_sweep

# The documented table (docs/ingestion.md): reason -> (field, action).
DOCUMENTED = {
    "unparseable_timestamp": ("row", "quarantined"),
    "null_close": ("row", "quarantined"),
    "non_positive_close": ("row", "quarantined"),
    "non_finite_close": ("row", "quarantined"),
    "zero_market_cap": ("market_cap", "nulled"),
    "missing_market_cap": ("market_cap", "nulled"),
    "negative_market_cap": ("market_cap", "nulled"),
    "non_finite_market_cap": ("market_cap", "nulled"),
    "negative_volume": ("volume", "nulled"),
    "non_finite_volume": ("volume", "nulled"),
    "ohlc_relation": ("ohlc", "nulled"),
    "non_positive_ohlc": ("ohlc", "nulled"),
    "incomplete_ohlc": ("ohlc", "nulled"),
    "off_midnight": ("date", "floored"),
    "duplicate_date": ("row", "deduplicated"),
    "price_jump": ("close", "flagged"),
    "off_peg": ("close", "flagged"),
    "zero_volume": ("volume", "flagged"),
    "missing_volume": ("volume", "flagged"),
    "missing_day": ("row", "flagged"),
    "out_of_order": ("row", "flagged"),
}


def test_every_reason_code_is_declared_once_with_its_field_and_action() -> None:
    declared = [*RULES, *SERIES_RULES.values(), MISSING_DAY]
    reasons = [r.reason for r in declared]
    assert len(reasons) == len(set(reasons))
    assert {r.reason: (r.field, r.action) for r in declared} == DOCUMENTED
    assert all(r.stage in STAGES for r in RULES)


def clean_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "snapped_at": pd.Timestamp("2024-01-02", tz="UTC"),
        "close": 2.0,
        "market_cap": 1e9,
        "volume": 1e6,
        "open": 1.9,
        "high": 2.1,
        "low": 1.8,
        "prev_close": 1.9,
        "stablecoin": False,
    }
    row.update(changes)
    return row


def prepared(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    frame["snapped_at"] = pd.to_datetime(frame["snapped_at"], utc=True)
    frame["date"] = frame["snapped_at"].dt.floor("D").dt.tz_localize(None)
    return frame


HITS: dict[str, dict[str, Any]] = {
    "unparseable_timestamp": {"snapped_at": pd.NaT},
    "off_midnight": {"snapped_at": pd.Timestamp("2024-01-02 00:00:01", tz="UTC")},
    "null_close": {"close": np.nan},
    "non_finite_close": {"close": -np.inf},
    "non_positive_close": {"close": 0.0},
    "zero_market_cap": {"market_cap": 0.0},
    "missing_market_cap": {"market_cap": np.nan},
    "negative_market_cap": {"market_cap": -1.0},
    "non_finite_market_cap": {"market_cap": np.inf},
    "negative_volume": {"volume": -1e-9},
    "non_finite_volume": {"volume": np.inf},
    "zero_volume": {"volume": 0.0},
    "missing_volume": {"volume": np.nan},
    "incomplete_ohlc": {"high": np.nan},
    "non_positive_ohlc": {"low": 0.0},
    "ohlc_relation": {"high": 1.99},  # below the close 2.0
    "price_jump": {"prev_close": 0.6},  # x3.33
    "off_peg": {"stablecoin": True},  # 2.0 is 100% from 1
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.reason)
def test_each_rule_holds_on_its_case_and_on_no_clean_row(rule: Rule) -> None:
    rows = prepared(clean_row(), clean_row(**HITS[rule.reason]), clean_row())
    assert rule.check(rows, Limits()).tolist() == [False, True, False]
    if rule.detail is not None:
        assert all(rule.detail(rows, Limits(), np.array([1])))


def test_the_limits_are_the_thresholds() -> None:
    jump = next(r for r in RULES if r.reason == "price_jump")
    peg = next(r for r in RULES if r.reason == "off_peg")
    rows = prepared(clean_row(prev_close=0.8, close=2.0, stablecoin=True))  # x2.5, 100% off the peg
    assert jump.check(rows, Limits()).tolist() == [False]
    assert jump.check(rows, Limits(jump_factor=2.0)).tolist() == [True]
    assert peg.check(rows, Limits(peg_tolerance=1.5)).tolist() == [False]


def test_candle_reasons_exclude_each_other() -> None:
    candles = [r for r in RULES if r.field == "ohlc"]
    rows = prepared(clean_row(high=np.nan, low=-1.0), clean_row(low=-1.0, high=1.0), clean_row(open=np.nan,
                    high=np.nan, low=np.nan))
    masks = np.column_stack([r.check(rows, Limits()) for r in candles])
    assert masks.sum(axis=1).tolist() == [1, 1, 0]  # one reason per broken candle; no candle is no error


def test_rules_needing_a_column_apply_only_when_the_source_sends_it() -> None:
    assert {r.reason for r in rules_for("values", {"close"})} == {"price_jump", "off_peg"}
    with_all = {r.reason for r in rules_for("values", {"close", "market_cap", "volume", *OHLC})}
    assert with_all == {r.reason for r in RULES if r.stage == "values"}
    frame = pd.DataFrame({"snapped_at": ["2024-01-01T00:00:00Z"], "close": [1.0]})
    _, events = validate_market_rows(frame, coin_id="c", source="x")
    assert events.empty  # no market cap or volume column: nothing to report about them


def test_a_stage_is_judged_before_it_acts() -> None:
    """A -inf market cap is negative and non-finite: both events, then NULL; nulled candles lose all three."""
    assert all(set(r.nulls) <= {"market_cap", "volume", *OHLC} for r in RULES if r.action == NULLED)
    frame = pd.DataFrame(
        {
            "coin_id": ["a"],
            "snapped_at": ["2024-01-01T00:00:00Z"],
            "close": [1.0],
            "market_cap": [-np.inf],
            "volume": [1.0],
        }
    )
    good, events = validate_sweep(frame, source="m")
    assert sorted(events["reason"]) == ["negative_market_cap", "non_finite_market_cap"]
    assert good["market_cap"].isna().all()


def test_checks_are_vectorised_over_many_rows() -> None:
    n = 10_000
    rows = prepared(*[clean_row()] * n)
    for rule in RULES:
        mask = rule.check(rows, Limits())
        assert mask.shape == (n,) and mask.dtype == bool and not mask.any(), rule.reason
