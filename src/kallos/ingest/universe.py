"""The coin universe: `/coins/list` (active and inactive) into `coins`, plus the exclusion-category sweeps.

Coins are never deleted: a coin that leaves the lists keeps its row and history (status `inactive`), so an index
can be built without survivorship bias. Identity is the CoinGecko id, never the symbol (symbols collide). When an
id vanishes and a new id appears with the same symbol and name in the same sync, it is recorded as a probable
rename (`kallos_state` key `renamed:<old id>`) and logged; the old id keeps its history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from kallos.errors import CoinGeckoError
from kallos.ingest import frames
from kallos.ingest.archive import attach_archive
from kallos.ingest.runner import RunCounts, api_mark
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.store import Store

log = get_logger("kallos.ingest.universe")

EXCLUSION_CATEGORIES: dict[str, str] = {
    "stablecoins": "Stablecoins",
    "wrapped-tokens": "Wrapped-Tokens",
    "liquid-staking-tokens": "Liquid Staking Tokens",
    "bridged-tokens": "Bridged Tokens",
}
"""docs/decisions.md#D8: categories the index excludes, swept from `/coins/markets?category=` at every sync."""


async def sync_universe(store: Store, client: Any, settings: Any) -> dict[str, Any]:
    """Load `/coins/list` with platforms into `coins`, keep first/last seen and status, sweep exclusion
    categories; returns the step's counts (:meth:`StepOutcome.counts`).
    """
    return (await universe_step(StepContext.direct(store, settings, client=client))).counts()


async def universe_step(ctx: StepContext) -> StepOutcome:
    """The universe sync as a step (docs/decisions.md#D37)."""
    store, client, settings, now = ctx.store, ctx.require_client(), ctx.settings, ctx.now
    started = time.perf_counter()
    counts = RunCounts()
    before = api_mark(client)
    archive = attach_archive(store, client, settings)
    items = await client.coins_list(include_platform=True, status="all")
    from kallos.ingest.market import check_api_clock

    check_api_clock(client, now)  # coins' first/last seen come from this clock (docs/decisions.md#D55)
    listed = frames.coins_list_frame(items, now)
    existing = store.query("SELECT coingecko_id, symbol, name, status FROM coins")
    known = set(existing["coingecko_id"])
    new_ids = set(listed["coingecko_id"]) - known
    vanished = existing[
        ~existing["coingecko_id"].isin(set(listed["coingecko_id"])) & (existing["status"] != "inactive")
    ]
    renames = _probable_renames(vanished, listed[listed["coingecko_id"].isin(new_ids)])
    with store.transaction():
        written = store.upsert("coins", listed, preserve=("first_seen",))
        if not vanished.empty:
            gone = vanished[["coingecko_id", "symbol", "name"]].assign(status="inactive")
            store.upsert("coins", gone)
        if renames:
            store.upsert(
                "kallos_state",
                pd.DataFrame({"key": [f"renamed:{o}" for o in renames], "value": list(renames.values())}),
            )
    for old, new in renames.items():
        log.warning(
            "coin id probably renamed: %s -> %s (history stays under the old id)",
            old,
            new,
            extra={"coin_id": old, "new_coin_id": new},
        )
    cats = await sweep_categories(store, client, EXCLUSION_CATEGORIES, now)
    await archive.flush()
    symbols = listed["symbol"].str.lower()
    counts.coins = len(listed)
    counts.rows_written = written
    counts.measure_api(client, before)
    counts.extra.update(
        {
            "new": len(new_ids),
            "inactive": int((listed["status"] == "inactive").sum()) + len(vanished),
            "vanished": len(vanished),
            "renamed": len(renames),
            "shared_symbols": int(symbols.duplicated(keep=False).sum()),
            "category_rows": cats,
        }
    )
    return counts.finish("universe synced", started)


def _probable_renames(vanished: pd.DataFrame, new: pd.DataFrame) -> dict[str, str]:
    if vanished.empty or new.empty:
        return {}
    by_key: dict[tuple[str, str], list[str]] = {}
    for r in new.itertuples(index=False):
        by_key.setdefault((str(r.symbol).lower(), str(r.name).lower()), []).append(r.coingecko_id)
    out = {}
    for r in vanished.itertuples(index=False):
        candidates = by_key.get((str(r.symbol).lower(), str(r.name).lower()), [])
        if len(candidates) == 1:
            out[r.coingecko_id] = candidates[0]
    return out


async def sweep_categories(store: Store, client: Any, categories: dict[str, str], now: Any) -> int:
    """`/coins/markets?category=...` for each category -> `coin_categories` (coins we know only)."""
    known = set(store.coin_map(refresh=True))
    rows = []
    for cat_id, name in categories.items():
        try:
            members = await client.coins_markets(category=cat_id)
        except CoinGeckoError as exc:
            log.warning("category sweep failed for %s: %s", cat_id, exc, extra={"category": cat_id})
            continue
        rows += [{"coin_id": m.id, "category_id": cat_id, "name": name} for m in members if m.id in known]
    return write_categories(store, rows, now)


def write_categories(
    store: Store, rows: Iterable[dict[str, Any]], now: Any, first: dict[str, str] | None = None
) -> int:
    """Upsert coin categories (first_seen kept) and set `coins.category` to the first one where empty."""
    frame = pd.DataFrame(list(rows), columns=["coin_id", "category_id", "name"])
    if frame.empty:
        return 0
    frame = frame.assign(first_seen=now, last_seen=now)
    with store.transaction():
        n = store.upsert("coin_categories", frame, preserve=("first_seen",))
        firsts = first or {c: g["category_id"].iloc[0] for c, g in frame.groupby("coin_id", sort=False)}
        current = store.query("SELECT coingecko_id, symbol, name, category FROM coins")
        current = current[current["coingecko_id"].isin(list(firsts))]
        if first is None:
            current = current[current["category"].isna()]
        if not current.empty:
            store.upsert(
                "coins",
                current[["coingecko_id", "symbol", "name"]].assign(
                    category=current["coingecko_id"].map(firsts)
                ),
            )
    return n


def ensure_coins(store: Store, market_rows: Sequence[Any], now: Any) -> None:
    """Coins met in `/coins/markets` but not yet in `coins` get a row; known ones get rank and last seen."""
    if not market_rows:
        return
    frame = pd.DataFrame(
        {
            "coingecko_id": [r.id for r in market_rows],
            "symbol": [r.symbol for r in market_rows],
            "name": [r.name for r in market_rows],
            "market_cap_rank": [r.market_cap_rank for r in market_rows],
            "status": "active",
            "first_seen": now,
            "last_seen": now,
        }
    )
    store.upsert("coins", frame, preserve=("first_seen",))


def platforms_json(value: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in value.items() if k}, sort_keys=True)
