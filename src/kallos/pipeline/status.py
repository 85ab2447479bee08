"""What `kallos status` shows: the last runs, each table's freshness and the market data's coverage."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kallos import clock
from kallos.pipeline.ledger import recent_runs, run_steps
from kallos.store import Store
from kallos.store.schema import TABLES

# The tables whose freshness matters to a user, and the column that says how fresh they are.
FRESHNESS = {
    "coins": "last_seen",
    "daily_market_data": "date",
    "market_snapshots": "fetched_at",
    "daily_technical_indicators": "date",
    "trading_signals": "date",
    "index_monthly_constituents": "selection_date",
    "daily_index_values": "date",
    "index_turnover": "selection_date",
    "data_quality_events": "detected_at",  # when a problem was found, not the (old) day it concerns
    "pipeline_runs": "started_at",
}


DATABASE_STAMPED = {"detected_at"}


@dataclass
class StatusReport:
    runs: pd.DataFrame
    last_run_steps: pd.DataFrame
    freshness: pd.DataFrame
    coverage: dict[str, Any]


def freshness(store: Store, today: dt.date | None = None) -> pd.DataFrame:
    """Per table: rows, the newest date (or timestamp) and its age in days."""
    today = today or clock.today()
    rows = []
    for table, column in FRESHNESS.items():
        if table not in TABLES:
            continue
        n = int(store.scalar(f"SELECT count(*) FROM {table}") or 0)
        newest = store.scalar(f'SELECT max("{column}") FROM {table}') if n else None
        latest = pd.Timestamp(newest) if newest is not None else None
        # The database stamps detected_at with its own clock, so its age is measured by the real date
        # (docs/decisions.md#D57); every other column is a data date, measured by Kallos' (injectable) today.
        ref = dt.datetime.now(dt.UTC).date() if column in DATABASE_STAMPED else today
        age = (ref - latest.date()).days if latest is not None else None
        rows.append({"table": table, "rows": n, "column": column, "latest": latest, "age_days": age})
    return pd.DataFrame(rows)


def coverage(store: Store, min_coverage: float) -> dict[str, Any]:
    """Coins with market data, how many meet KALLOS_MIN_COVERAGE (docs/decisions.md#D22), and the mean coverage."""
    from kallos.indicators.step import coverage_table

    table = coverage_table(store)
    n_coins = int(store.scalar("SELECT count(*) FROM coins") or 0)
    active = int(store.scalar("SELECT count(*) FROM coins WHERE status IS NULL OR status = 'active'") or 0)
    with_indicators = int(store.scalar("SELECT count(DISTINCT coin_id) FROM daily_technical_indicators") or 0)
    out: dict[str, Any] = {
        "coins": n_coins,
        "active_coins": active,
        "coins_with_market_data": len(table),
        "coins_with_indicators": with_indicators,
        "min_coverage": min_coverage,
        "coins_meeting_min_coverage": int((table["coverage"] >= min_coverage).sum()) if len(table) else 0,
        "mean_coverage": float(table["coverage"].mean()) if len(table) else None,
        "first_date": pd.Timestamp(table["first_date"].min()).date() if len(table) else None,
        "last_date": pd.Timestamp(table["last_date"].max()).date() if len(table) else None,
        "worst": [],
    }
    if len(table):
        worst = table.sort_values(["coverage", "coin_id"]).head(5)
        out["worst"] = [(r.coin_id, float(r.coverage)) for r in worst.itertuples(index=False)]
    return out


def status_report(store: Store, *, min_coverage: float, limit: int = 10) -> StatusReport:
    runs = recent_runs(store, limit)
    steps = run_steps(store, str(runs["run_id"].iloc[0])) if len(runs) else pd.DataFrame()
    return StatusReport(runs, steps, freshness(store), coverage(store, min_coverage))


def counts_of(value: Any) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return {}
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}
