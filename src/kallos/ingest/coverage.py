"""Coverage per coin (`kallos market gaps`) and the cost of a backfill before running it (`kallos plan
backfill`).

Both read the store and the plan rules. Coverage comes from the stored data itself, never from watermarks alone
(a watermark moved by a run whose clock was ahead would hide the days behind it: docs/decisions.md#D55). The
estimate prices the coins a backfill would really fetch at the rate its client would really use (the caller
resolves `--top N` and the pro plan's `/key` rate through the API: docs/decisions.md#D56).
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
                # from the data: days since the last stored bar, whatever the watermark claims
                "behind_days": max((last_final - last).days, 0) if last else None,
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
    top_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Calls, credits and minutes a backfill will take on the configured plan.

    With `top`, `top_ids` are today's top N as the API listed them (possibly fewer than N): each is priced by its
    own watermark, like a named coin. Without `top_ids` they are unknown, and N new coins are an upper bound.
    `rate_per_minute` is the rate the client would use (the pro plan's `/key` rate); default: the settings'."""
    plan = settings.coingecko_plan
    paid = plans.get_plan(plan).paid
    want_candles = paid if candles is None else candles
    by_endpoint: dict[str, int] = {}
    ids: list[str]
    if coins:
        ids = list(dict.fromkeys(coins))
    elif top:
        ids = list(dict.fromkeys(top_ids or []))
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
    spans = coverage_counts(store)
    last_stored = {r.coin_id: pd.Timestamp(r.last_stored).date() for r in spans.itertuples(index=False)}
    with_holes = coins_with_holes(store, wms, spans)
    windows: list[Window] = []
    for coin in ids:
        wm = wms.get(coin)
        hole_days = holes(stored_dates(store, coin), wm.missing) if wm and coin in with_holes else []
        w = plan_window(
            coin,
            wm,
            plan=plan,
            now=now,
            last_final=last_final,
            since=since,
            hole_days=hole_days,
            last_stored=last_stored.get(coin),
        )
        if w is not None:
            windows.append(w)
    if top and top_ids is None:  # today's top N unknown (no API call): count each as new, an upper bound
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
        "coins": len(ids) + (top if top and top_ids is None else 0),
        "listed": len(top_ids) if top_ids is not None else None,
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
