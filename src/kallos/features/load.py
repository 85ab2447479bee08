"""`load_features`: the feature frame of stored bars, indicators, signals, index and alternative data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from kallos.features import sources
from kallos.features.frame import Inputs, assemble, check_horizons, check_timeframe
from kallos.features.naming import check_naming
from kallos.store import Store, open_store
from kallos.store.base import _as_date


def load_features(
    *,
    database_url: str | None = None,
    coins: Sequence[str] | None = None,
    top: int | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    timeframe: str = "1d",
    columns: Sequence[str] | None = None,
    naming: str = "kallos",
    horizons: Sequence[int] = (1, 7, 30),
    store: Store | None = None,
    index_name: str = "default",
) -> pd.DataFrame:
    """One row per stored bar of the chosen coins in [start, end], keyed by `coin_id` (CoinGecko id) and `date`.

    `database_url` defaults to KALLOS_DATABASE_URL; `store` passes an open store instead. `top` takes the N
    largest coins by market cap on the last stored day on or before `end` (a universe chosen with hindsight;
    filter on `market_cap_rank` for a point-in-time one). Labels read stored bars after `end`. `index_name` picks
    the named index whose membership and weights fill `index_member` and `index_weight`.
    """
    check_naming(naming)
    step = check_timeframe(timeframe)
    horizons = check_horizons(horizons)
    first = _as_date(start) if start is not None else None
    last = _as_date(end) if end is not None else None
    own = store is None
    if store is None:
        if database_url is None:
            from kallos.settings import get_settings

            database_url = get_settings().database_url
        store = open_store(database_url)
    try:
        names = store.coin_map(refresh=True)  # CoinGecko id -> integer id; frames carry the integer until the end
        wanted = sources.resolve_coins(store, coins, top, last)
        chosen = None if wanted is None else [names[c] for c in wanted]
        label_end = last + dt.timedelta(days=max(horizons) * step) if last is not None else None
        constituents = sources.read_index_constituents(store, last, index_name)
        members = sorted(set(constituents["coin_id"]))
        since = pd.Timestamp(constituents["selection_date"].min()).date() if members else None
        inputs = Inputs(
            bars=sources.read_bars(store, chosen, first, label_end),
            indicators=sources.read_indicators(store, chosen, first, last),
            signals=sources.read_signals(store, chosen, first, last),
            caps=sources.read_caps(store, first, last),
            first_bar=sources.read_first_bars(store, chosen),
            constituents=constituents,
            member_closes=sources.read_bars(store, members, since, last)[["coin_id", "date", "close"]]
            if members
            else None,
            alt=sources.read_alt(store, chosen, last),
            coin_order=[names[c] for c in sorted(names)],  # rows sorted by CoinGecko id, as build_features does
        )
        frame = assemble(
            inputs, horizons=horizons, naming=naming, step_days=step, start=first, end=last, columns=columns
        )
    finally:
        if own:
            store.close()
    ids = pd.Series(list(names), index=list(names.values()), dtype=object)
    frame["coin_id"] = ids.reindex(frame["coin_id"].to_numpy()).to_numpy(dtype=object)
    return frame
