"""Which coins a command works on: `--coins`, `--top N` (today's ranking), or every tracked coin.

`--top N` ranks by today's market cap from `/coins/markets` (⌈N/250⌉ calls); it only sees coins listed today, so an
index built from it alone is survivorship-biased (docs/decisions.md#D9) — `--include-inactive` adds the delisted coins
the `coins` table knows. Tracked coins are those with a market-data watermark (backfilled at least once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kallos import clock
from kallos.coingecko import plans
from kallos.errors import InputError
from kallos.ingest.state import CHART
from kallos.ingest.universe import ensure_coins
from kallos.store import Store


def tracked_coins(store: Store, *, active_only: bool = False) -> list[str]:
    sql = (
        "SELECT c.coingecko_id AS coin_id FROM ingestion_watermarks w JOIN coins c ON c.coin_id = w.coin_id "
        "WHERE w.series = :s"
        + (" AND coalesce(c.status, 'active') = 'active'" if active_only else "")
        + " ORDER BY c.coingecko_id"
    )
    return list(store.query(sql, {"s": CHART})["coin_id"])


def inactive_coins(store: Store) -> list[str]:
    frame = store.query("SELECT coingecko_id FROM coins WHERE status = 'inactive' ORDER BY coingecko_id")
    return list(frame["coingecko_id"])


async def top_coins(store: Store, client: Any, n: int) -> list[str]:
    if n < 1:
        raise InputError("--top needs a positive number", option="--top")
    per_page = min(plans.MARKETS_MAX_PER_PAGE, n)
    rows = await client.coins_markets(per_page=per_page, pages=math.ceil(n / per_page))
    rows = rows[:n]
    ensure_coins(store, rows, clock.utcnow())
    return [r.id for r in rows]


async def select_coins(
    store: Store,
    client: Any,
    *,
    coins: Sequence[str] | None,
    top: int | None,
    include_inactive: bool = False,
) -> tuple[list[str], list[str]]:
    """(coin ids to work on, ids asked for but unknown to the `coins` table)."""
    if coins and top:
        raise InputError("give either --coins or --top, not both")
    known = store.coin_map(refresh=True)
    if coins:
        wanted = list(dict.fromkeys(coins))
        return [c for c in wanted if c in known], [c for c in wanted if c not in known]
    if top:
        ids = await top_coins(store, client, top)
    else:
        ids = tracked_coins(store)
        if not ids and not include_inactive:
            raise InputError(
                "no coins are tracked yet: name them with --coins ID,... or --top N "
                "(after `kallos coins sync`)"
            )
    if include_inactive:
        ids = list(dict.fromkeys([*ids, *inactive_coins(store)]))
    return ids, []
