"""Coverage per coin (`kallos market gaps`) and the cost of a backfill before running it (`kallos plan
backfill`).

Both read only the store and the plan rules: no API call is made.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from kallos.coingecko import plans
from kallos.ingest.market import Window, expected_calls, plan_window
from kallos.ingest.state import CHART, coins_with_holes, coverage_counts, holes, read_watermarks, stored_dates
from kallos.store import Store

COVERAGE_COLUMNS = [
    "coin_id",
    "status",
    "first_date",
    "last_date",
    "checked_through",
    "rows",
    "span_days",
    "confirmed_missing",
    "holes",
    "coverage",
    "behind_days",
]


def coverage_report(store: Store, *, last_final: dt.date, coins: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per tracked (or named) coin: stored span, rows, known-missing days, holes, lag."""
    wms = read_watermarks(store, CHART)
    counts = coverage_counts(store).set_index("coin_id")
    status = (
        store.query("SELECT coingecko_id, status FROM coins").set_index("coingecko_id")["status"].to_dict()
    )
    ids = list(coins) if coins else sorted(set(wms) | set(counts.index))
    with_holes = coins_with_holes(store, wms)
    rows = []
    for coin in ids:
        wm = wms.get(coin)
        if coin in counts.index:
            c = counts.loc[coin]
            first, last, n = (
                pd.Timestamp(c["first_stored"]).date(),
                pd.Timestamp(c["last_stored"]).date(),
                int(c["n_rows"]),
            )
        else:
            first = last = None
            n = 0
        span = (last - first).days + 1 if first and last else 0
        missing = sum(1 for d in (wm.missing if wm else set()) if first and last and first <= d <= last)
        n_holes = (
            len(holes(stored_dates(store, coin), wm.missing if wm else set())) if coin in with_holes else 0
        )
        checked = wm.last_date if wm else None
        rows.append(
            {
                "coin_id": coin,
                "status": status.get(coin),
                "first_date": first,
                "last_date": last,
                "checked_through": checked,
                "rows": n,
                "span_days": span,
                "confirmed_missing": missing,
                "holes": n_holes,
                "coverage": round(n / span, 4) if span else 0.0,
                "behind_days": (last_final - checked).days if checked else None,
            }
        )
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


def estimate_backfill(
    store: Store,
    settings: Any,
    *,
    now: dt.datetime,
    last_final: dt.date,
    coins: Sequence[str] | None = None,
    top: int | None = None,
    since: dt.date | None = None,
    include_inactive: bool = False,
    candles: bool | None = None,
    rate_per_minute: float | None = None,
) -> dict[str, Any]:
    """Calls, credits and minutes a backfill will take on the configured plan (upper bound for new coins)."""
    plan = settings.coingecko_plan
    paid = plans.get_plan(plan).paid
    want_candles = paid if candles is None else candles
    by_endpoint: dict[str, int] = {}
    ids: list[str]
    if coins:
        ids = list(dict.fromkeys(coins))
    elif top:
        ids = []
        by_endpoint["/coins/markets"] = math.ceil(top / min(top, plans.MARKETS_MAX_PER_PAGE))
    else:
        ids = list(read_watermarks(store, CHART))
    if include_inactive:
        ids += [
            c
            for c in store.query("SELECT coingecko_id FROM coins WHERE status = 'inactive'")["coingecko_id"]
            if c not in ids
        ]
    wms = read_watermarks(store, CHART)
    with_holes = coins_with_holes(store, wms)
    windows: list[Window] = []
    for coin in ids:
        wm = wms.get(coin)
        hole_days = holes(stored_dates(store, coin), wm.missing) if wm and coin in with_holes else []
        w = plan_window(coin, wm, plan=plan, now=now, last_final=last_final, since=since, hole_days=hole_days)
        if w is not None:
            windows.append(w)
    if top:  # today's top N are not known without a call: count each as new
        for i in range(top):
            w = plan_window(f"top-{i}", None, plan=plan, now=now, last_final=last_final, since=since)
            if w is not None:
                windows.append(w)
    for w in windows:
        for k, v in expected_calls(w, plan, want_candles).items():
            by_endpoint[k] = by_endpoint.get(k, 0) + v
    calls = sum(by_endpoint.values())
    rate = rate_per_minute or settings.effective_rate_limit
    return {
        "plan": plan,
        "coins": len(ids) + (top or 0),
        "coins_to_fetch": len(windows),
        "clamped": sum(1 for w in windows if w.clamped_from is not None),
        "calls": calls,
        "credits": calls * plans.credits_for(200),
        "by_endpoint": by_endpoint,
        "rate_per_minute": rate,
        "minutes": round(plans.minutes_for(calls, rate), 2),
        "candles": want_candles,
        "history_days": plans.get_plan(plan).history_days,
    }
