"""Coin details from `/coins/{id}`: description, links, genesis date, hashing algorithm, categories, platforms,
community and developer metrics (NULL where CoinGecko no longer supplies them). Each refresh also upserts the day's
metrics into `coin_details_history` (docs/decisions.md#D78).

Details change slowly, so only coins whose details are older than `max_age_days` (or missing) are fetched, the
stalest first, at most `limit` per run: the rest wait for the next run, which keeps a run inside the rate
budget.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from kallos.errors import KallosError
from kallos.ingest import frames
from kallos.ingest.alt_history import alt_row, snapshot_day
from kallos.ingest.archive import attach_archive
from kallos.ingest.runner import RunCounts, api_mark
from kallos.ingest.select import select_coins
from kallos.ingest.universe import write_categories
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.store import Store

log = get_logger("kallos.ingest.details")


async def refresh_details(
    store: Store,
    client: Any,
    settings: Any,
    coins: Sequence[str] | None = None,
    top: int | None = None,
    max_age_days: int = 30,
    limit: int | None = None,
    include_inactive: bool = False,
) -> dict[str, Any]:
    """Refresh stale coin details; returns the step's counts (:meth:`StepOutcome.counts`)."""
    ctx = StepContext.direct(store, settings, client=client)
    outcome = await details_step(
        ctx, coins=coins, top=top, max_age_days=max_age_days, limit=limit, include_inactive=include_inactive
    )
    return outcome.counts()


async def details_step(
    ctx: StepContext,
    *,
    coins: Sequence[str] | None = None,
    top: int | None = None,
    max_age_days: int = 30,
    limit: int | None = None,
    include_inactive: bool = False,
) -> StepOutcome:
    """The details refresh as a step (docs/decisions.md#D37)."""
    store, client, settings, now = ctx.store, ctx.require_client(), ctx.settings, ctx.now
    started = time.perf_counter()
    counts = RunCounts()
    before = api_mark(client)
    archive = attach_archive(store, client, settings)
    ids, unknown = await select_coins(store, client, coins=coins, top=top, include_inactive=include_inactive)
    for u in unknown:
        counts.failed[u] = "not in the coins table (run `kallos coins sync` first)"
    stale = _stale(store, ids, now, max_age_days)
    if limit is not None:
        stale = stale[:limit]
    counts.skipped = len(ids) - len(stale)
    name_to_id: dict[str, str] | None = None
    batch = max(1, getattr(settings, "concurrency", 8) * 4)
    for start in range(0, len(stale), batch):
        group = stale[start : start + batch]
        results = await asyncio.gather(
            *(client.coin(c, market_data=False, community_data=True, developer_data=True) for c in group),
            return_exceptions=True,
        )
        rows, cats, firsts, alt = [], [], {}, []
        for coin, res in zip(group, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, KallosError):
                    raise res
                counts.failed[coin] = str(res)
                log.warning("details failed: %s", res, extra={"coin_id": coin})
                continue
            row = frames.detail_row(res, now)
            if row["coingecko_id"] != coin:  # an answer under another id: a rename on CoinGecko's side
                log.warning(
                    "details for %s came back as %s", coin, row["coingecko_id"], extra={"coin_id": coin}
                )
                row["coingecko_id"] = coin
            ids_names = _categories(res)
            if not ids_names and res.categories:
                if name_to_id is None:
                    name_to_id = await _category_ids(client)
                ids_names = [(name_to_id.get(n, frames.slug(n)), n) for n in res.categories]
            if ids_names:
                row["category"] = ids_names[0][0]
                firsts[coin] = ids_names[0][0]
            cats += [{"coin_id": coin, "category_id": i, "name": n} for i, n in ids_names]
            rows.append(row)
            snapshot = alt_row(res.model_extra or {}, coin, snapshot_day(now), source="details", fetched_at=now)
            if snapshot is not None:
                alt.append(snapshot)
            counts.coins += 1
        if rows:
            with store.transaction():
                counts.rows_written += store.upsert("coins", pd.DataFrame(rows))
                write_categories(store, cats, now, first=firsts)
                if alt:  # one row per coin and day: the day's history of the metrics (docs/decisions.md#D78)
                    store.upsert("coin_details_history", pd.DataFrame(alt))
        await archive.flush()
    counts.measure_api(client, before)
    return counts.finish("details refreshed", started)


def _stale(store: Store, ids: Sequence[str], now: dt.datetime, max_age_days: int) -> list[str]:
    frame = store.query("SELECT coingecko_id, details_updated_at FROM coins")
    ages = dict(zip(frame["coingecko_id"], frame["details_updated_at"], strict=True))
    limit = pd.Timestamp(now) - pd.Timedelta(days=max_age_days)
    never = pd.Timestamp("1970-01-01", tz="UTC")
    out = [c for c in ids if pd.isna(ages.get(c)) or pd.Timestamp(ages[c]) <= limit]
    return sorted(out, key=lambda c: (never if pd.isna(ages.get(c)) else pd.Timestamp(ages[c]), c))


def _categories(detail: Any) -> list[tuple[str, str]]:
    """(id, name) pairs from `categories_details` when the answer has it (newer API), else []."""
    raw = (detail.model_extra or {}).get("categories_details")
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if isinstance(item, dict) and item.get("id"):
            out.append((str(item["id"]), str(item.get("name") or item["id"])))
    return out


async def _category_ids(client: Any) -> dict[str, str]:
    try:
        return {c.name: c.id for c in await client.categories()}
    except KallosError as exc:
        log.warning("could not read category ids (%s); deriving them from names", exc)
        return {}
