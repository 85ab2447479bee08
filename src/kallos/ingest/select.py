"""Which coins a command works on: `--coins`, `--top N` (today's ranking), or every tracked coin.

`--top N` ranks by today's market cap from `/coins/markets` (⌈N/250⌉ calls); it only sees coins listed today, so an
index built from it alone is survivorship-biased (docs/decisions.md#D9) — `--include-inactive` adds the delisted coins
the `coins` table knows. Tracked coins are those with a market-data watermark (backfilled at least once).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
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


INDEX_CANDIDATE_FACTOR = 2
"""An index's candidates are its seats plus its rank buffer, twice over, among the coins it does not exclude
(docs/decisions.md#D117): a coin ranked there today can be selected at the next month end."""


def exact_universe(
    ranks: Mapping[str, int | None],
    *,
    top: int,
    indices: Sequence[tuple[int, Collection[str], Collection[str]]] = (),
) -> set[str]:
    """The coins (of `ranks`) that get exact chart closes and candles in mixed mode. Pure.

    `ranks` maps each coin to its market-cap rank (None: unranked). `top`: coins ranked 1..top. `indices`: per
    index (seats + rank buffer, the coins it excludes, its latest constituents); each adds its constituents and
    its first INDEX_CANDIDATE_FACTOR x seats non-excluded coins by rank (ties break on the CoinGecko id, D1)."""
    ranked = sorted((r, c) for c, r in ranks.items() if r is not None)
    out = {c for r, c in ranked if r <= top}
    for seats, excluded, constituents in indices:
        out.update(c for c in constituents if c in ranks)
        eligible = [c for _, c in ranked if c not in excluded]
        out.update(eligible[: INDEX_CANDIDATE_FACTOR * seats])
    return out


def index_candidate_inputs(store: Store, settings: Any) -> list[tuple[int, set[str], list[str]]]:
    """Per defined index (docs/decisions.md#D62): seats + rank buffer, its excluded coins, its latest constituents."""
    from kallos.index.exclusions import excluded_by_rules
    from kallos.index.step import definitions, read_exclusion_inputs

    latest = store.query(
        "SELECT i.index_name, c.coingecko_id FROM index_monthly_constituents i JOIN coins c ON c.coin_id = i.coin_id "
        "WHERE (i.year * 12 + i.month) = (SELECT max(j.year * 12 + j.month) FROM index_monthly_constituents j "
        "WHERE j.index_name = i.index_name)"
    )
    inputs = read_exclusion_inputs(store)
    out = []
    for d in definitions(store, settings):
        members = list(latest.loc[latest["index_name"] == d.name, "coingecko_id"])
        out.append((d.n_constituents + d.rank_buffer, excluded_by_rules(*inputs, d.excluded_categories), members))
    return out


def stored_ranks(store: Store, coins: Sequence[str] | None) -> dict[str, int | None]:
    """The market-cap rank each coin had at the last sweep (`coins.market_cap_rank`), None when unknown; without
    `coins`, every ranked coin."""
    frame = store.query("SELECT coingecko_id, market_cap_rank FROM coins WHERE market_cap_rank IS NOT NULL")
    known: dict[str, int | None] = {
        c: int(r) for c, r in zip(frame["coingecko_id"], frame["market_cap_rank"], strict=True)
    }
    return known if coins is None else {c: known.get(c) for c in coins}


def exact_close_coins(store: Store, settings: Any, ranks: Mapping[str, int | None]) -> set[str]:
    """The exact-close universe among `ranks`' coins: `KALLOS_EXACT_CLOSE_TOP` and every index's candidates."""
    return exact_universe(ranks, top=settings.exact_close_top, indices=index_candidate_inputs(store, settings))
