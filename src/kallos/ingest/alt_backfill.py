"""`kallos coins details --history --since DATE`: backfill `coin_details_history` from `/coins/{id}/history`.

One call per coin and day, so the work is planned first (`kallos plan details-history` prints the same plan): the
days from `since` through the last final day, clamped to the plan's history window, minus the days already stored.
A rerun therefore costs nothing, and a killed run resumes where it stopped (docs/decisions.md#D78).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kallos import clock
from kallos.coingecko import plans
from kallos.errors import InputError, KallosError
from kallos.ingest.alt_history import alt_row
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome, outcome_status
from kallos.store import Store

log = get_logger(__name__)

BATCH_CALLS = 50
"""Calls in flight before their rows are written: a killed run loses at most this many answers."""


@dataclass
class HistoryPlan:
    plan: str
    first_day: dt.date | None
    last_day: dt.date
    clamped: bool
    todo: dict[str, list[dt.date]] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(len(days) for days in self.todo.values())

    def estimate(self, rate_per_minute: float) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "coins": len(self.todo),
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat(),
            "clamped": self.clamped,
            "calls": self.calls,
            "credits": self.calls * plans.credits_for(200),
            "rate_per_minute": rate_per_minute,
            "minutes": round(plans.minutes_for(self.calls, rate_per_minute), 2),
        }


def stored_top(store: Store, n: int) -> list[str]:
    """The N coins with the best stored `market_cap_rank` (no API call: a plan must be free)."""
    frame = store.query(
        "SELECT coingecko_id FROM coins WHERE market_cap_rank IS NOT NULL ORDER BY market_cap_rank, coingecko_id "
        "LIMIT :n",
        {"n": n},
    )
    return list(frame["coingecko_id"])


def plan_history(store: Store, plan: str, *, coins: Sequence[str], since: dt.date, now: dt.datetime) -> HistoryPlan:
    last = clock.last_final_day(now)
    first = since
    earliest = plans.earliest_allowed(plan, now)
    clamped = False
    if earliest is not None:
        floor = (earliest + dt.timedelta(days=1)).date()  # whole days only inside the window
        if first < floor:
            first, clamped = floor, True
    result = HistoryPlan(plan=plan, first_day=first if first <= last else None, last_day=last, clamped=clamped)
    if first > last or not coins:
        return result
    stored = store.read("coin_details_history", coins=list(coins), start=first, end=last, columns=["date"])
    have: dict[str, set[pd.Timestamp]] = {}
    for coin, day in zip(stored["coin_id"], stored["date"], strict=True):
        have.setdefault(coin, set()).add(pd.Timestamp(day))
    days = pd.date_range(first, last, freq="D")
    for coin in coins:
        missing = [d.date() for d in days if d not in have.get(coin, set())]
        if missing:
            result.todo[coin] = missing
    return result


async def details_history_step(
    ctx: StepContext, *, coins: Sequence[str] | None, top: int | None, since: dt.date | None
) -> StepOutcome:
    """The backfill as a step (bind the options with functools.partial; the runner holds the lock and ledger)."""
    if since is None:
        raise InputError("the history backfill needs a first day (--since)", option="--since")
    client = ctx.require_client()
    ids = resolve(ctx.store, coins, top)
    plan = plan_history(ctx.store, ctx.settings.coingecko_plan, coins=ids, since=since, now=ctx.now)
    calls0, credits0 = client.stats.calls, client.stats.credits
    work = [(coin, day) for coin, days in plan.todo.items() for day in days]
    ctx.progress.start("details history", total=len(work))
    failures: dict[str, str] = {}
    written = 0
    for lo in range(0, len(work), BATCH_CALLS):
        batch = work[lo : lo + BATCH_CALLS]
        answers = await asyncio.gather(*(client.coin_history(c, d) for c, d in batch), return_exceptions=True)
        rows = []
        for (coin, day), answer in zip(batch, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, KallosError):
                    raise answer
                failures.setdefault(coin, f"{day}: {answer}")
                continue
            row = alt_row(answer, coin, day, source="history", fetched_at=ctx.now)
            if row is not None:
                rows.append(row)
        if rows:
            written += ctx.store.upsert("coin_details_history", pd.DataFrame(rows))
        ctx.progress.advance(len(batch))
    ctx.progress.finish()
    ok = len([c for c in plan.todo if c not in failures])
    log.info("details history backfilled", extra={"calls": len(work), "rows": written, "failed": len(failures)})
    return StepOutcome(
        status=outcome_status(failures=failures, coins_ok=ok),
        coins_ok=ok,
        rows_written=written,
        failures=failures,
        api_calls=client.stats.calls - calls0,
        api_credits=client.stats.credits - credits0,
        extra={"days_planned": len(work), "clamped": plan.clamped},
    )


def resolve(store: Store, coins: Sequence[str] | None, top: int | None) -> list[str]:
    if coins and top:
        raise InputError("give either --coins or --top, not both")
    known = store.coin_map(refresh=True)
    if coins:
        unknown = [c for c in coins if c not in known]
        if unknown:
            raise InputError(f"coins not in the coins table (run `kallos coins sync`): {', '.join(unknown[:10])}")
        return list(dict.fromkeys(coins))
    if top:
        return stored_top(store, top)
    raise InputError("name the coins with --coins ID,... or --top N")
