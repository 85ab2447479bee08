"""Two small inputs that between them raise every data-quality reason code, and how a test serialises results.

`data/validation_golden.json` holds what the validation returned for them before the rule table replaced the two
hand-written copies (docs/decisions.md#D44): the good rows and the events, every column, `raw` and `detail`
included. Regenerate it only for an intended change of behaviour: `python -m tests.ingest.validation_cases`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GOLDEN = Path(__file__).parent / "data" / "validation_golden.json"
INF = float("inf")


def batch_case() -> tuple[pd.DataFrame, dict[str, Any]]:
    """One coin's chart batch with candles: every per-coin reason code once or more."""
    rows = [
        # snapped_at, close, market_cap, volume, open, high, low
        ("2024-01-03 00:00:00 UTC", 4.0, 1e9, 5e6, 3.5, 4.2, 3.4),  # price_jump vs the stored 1.0, off_peg
        ("2024-01-02 00:00:00 UTC", 1.0, 0.0, 0.0, 1.0, 1.1, 0.9),  # out_of_order, zero cap, zero volume
        ("2024-01-04 06:30:00 UTC", 4.1, np.nan, np.nan, np.nan, np.nan, np.nan),  # off_midnight, missing cap/vol
        ("2024-01-05 00:00:00 UTC", None, 1e9, 5e6, 4.0, 4.2, 3.9),  # null_close
        ("2024-01-06 00:00:00 UTC", INF, 1e9, 5e6, 4.0, 4.2, 3.9),  # non_finite_close
        ("2024-01-07 00:00:00 UTC", -2.0, 1e9, 5e6, 4.0, 4.2, 3.9),  # non_positive_close
        ("yesterday-ish", 4.0, 1e9, 5e6, 4.0, 4.2, 3.9),  # unparseable_timestamp
        ("2024-01-08 00:00:00 UTC", 4.2, 1e9, 5e6, 4.0, 4.3, 3.9),  # duplicate_date: dropped, the next row wins
        ("2024-01-08 00:00:00 UTC", 4.3, -INF, INF, 4.0, 4.4, 3.9),  # non-finite (and negative) cap, volume
        ("2024-01-09 00:00:00 UTC", 4.4, 1e9, 5e6, 4.0, np.nan, 3.9),  # incomplete_ohlc
        ("2024-01-10 00:00:00 UTC", 4.5, 1e9, 5e6, 4.0, 4.6, -1.0),  # non_positive_ohlc
        ("2024-01-11 00:00:00 UTC", 4.6, -1e9, -5.0, 4.0, 4.5, 3.9),  # negative cap/volume, ohlc_relation (high)
        ("2024-01-14 00:00:00 UTC", 1.4, 1e9, 5e6, 1.3, 1.5, 1.2),  # missing_day (13th; 12th known), price_jump
    ]
    frame = pd.DataFrame(rows, columns=["snapped_at", "close", "market_cap", "volume", "open", "high", "low"])
    kwargs = {
        "coin_id": "tether",
        "source": "market_chart",
        "prev_close": 1.0,
        "prev_date": pd.Timestamp("2023-12-31"),
        "stablecoin": True,
        "known_missing": [pd.Timestamp("2024-01-12")],
    }
    return frame, kwargs


def sweep_case() -> tuple[pd.DataFrame, dict[str, Any]]:
    """A /coins/markets sweep, one row per coin: every reason code a sweep can raise."""
    rows = [
        # coin_id, snapped_at, close, market_cap, volume
        ("bitcoin", "2024-01-05T00:00:00Z", 40000.0, 8e11, 2e10),
        ("tether", "2024-01-05T00:04:10Z", 0.93, 9e10, 3e10),  # off_midnight, off_peg
        ("pump", "2024-01-05T00:00:00Z", 9.0, 0.0, 0.0),  # price_jump, zero cap, zero volume
        ("dump", "2024-01-05T00:00:00Z", 1.0, np.nan, np.nan),  # price_jump down, missing cap/vol
        ("neg", "2024-01-05T00:00:00Z", 2.0, -1.0, -1.0),  # negative cap/volume
        ("inf", "2024-01-05T00:00:00Z", 2.0, INF, -INF),  # non-finite cap/volume (-inf: negative too)
        ("nullc", "2024-01-05T00:00:00Z", None, 1e6, 1e3),  # null_close
        ("infc", "2024-01-05T00:00:00Z", INF, 1e6, 1e3),  # non_finite_close
        ("zeroc", "2024-01-05T00:00:00Z", 0.0, 1e6, 1e3),  # non_positive_close
        ("badts", "soon", 2.0, 1e6, 1e3),  # unparseable_timestamp
    ]
    frame = pd.DataFrame(rows, columns=["coin_id", "snapped_at", "close", "market_cap", "volume"])
    kwargs = {
        "source": "coins/markets",
        "prev_close": {"bitcoin": 39000.0, "pump": 2.0, "dump": 4.0, "tether": 1.0},
        "stablecoins": ["tether"],
    }
    return frame, kwargs


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A result frame as JSON-able records (timestamps as ISO text, NaN as None), dtypes aside."""
    out = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        for row in out.to_dict("records")
    ]


def results() -> dict[str, Any]:
    from kallos.ingest.validation import validate_market_rows, validate_sweep

    frame, kwargs = batch_case()
    good, events = validate_market_rows(frame, **kwargs)
    sweep, sweep_kwargs = sweep_case()
    sweep_good, sweep_events = validate_sweep(sweep, **sweep_kwargs)
    return {
        "batch": {"good": as_records(good), "events": as_records(events)},
        "sweep": {"good": as_records(sweep_good), "events": as_records(sweep_events)},
    }


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(results(), indent=1, sort_keys=True) + "\n")
