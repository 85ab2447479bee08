"""`load_features`: the feature frame of stored bars, indicators, signals, index and alternative data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from kallos.features import sources
from kallos.features.frame import (
    ALT_FEATURES,
    BAR_FIELDS,
    Inputs,
    assemble,
    check_horizons,
    check_timeframe,
    label_columns,
    wanted_columns,
)
from kallos.features.naming import check_naming
from kallos.indicators.contract import OUTPUT_COLUMNS
from kallos.signals.rules import RULE_IDS
from kallos.store import Store, open_store
from kallos.store.base import _as_date
from kallos.timeframes import SPECS


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
    """One row per stored bar of the chosen coins with its day in [start, end], keyed by `coin_id` (CoinGecko id)
    and `date` (`hour`, a UTC timestamp, on 1h; a week's Monday on 1w).

    `database_url` defaults to KALLOS_DATABASE_URL; `store` passes an open store instead. `top` takes the N
    largest coins by market cap on the last stored day on or before `end` (a universe chosen with hindsight;
    filter on `market_cap_rank` for a point-in-time one). Labels read stored bars after `end`. `index_name` picks
    the named index whose membership and weights fill `index_member` and `index_weight`. Only the sources the
    `columns` selection needs are read.
    """
    check_naming(naming)
    tf = check_timeframe(timeframe)
    spec = SPECS[tf.name]
    horizons = check_horizons(horizons)
    need = set(wanted_columns(columns, horizons, tf))
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
        wanted = sources.resolve_coins(store, coins, top, last, spec)
        chosen = None if wanted is None else [names[c] for c in wanted]
        # Labels read bars up to max(h) bars after `end`; a week's daily data (index, alt) is its Sunday's.
        ahead = max(horizons) * tf.step // (24 if tf.unit == "h" else 1) + 1
        label_end = last + dt.timedelta(days=ahead) if last is not None else None
        as_of_end = last + dt.timedelta(days=tf.close_days) if last is not None else None
        rank_from_bars = "market_cap_rank" in need and chosen is None  # every coin is read: rank among the bars
        fields = [f for f in BAR_FIELDS if f in need or f == "close" or (f == "market_cap" and rank_from_bars)]
        ind_cols = [c for c in ("ohlc_source", *OUTPUT_COLUMNS) if c in need]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kallos-features") as background:
            # The largest reads run while this thread reads the bars and builds the columns that need only them
            # (the database driver releases the GIL; `assemble` takes the indicators and signals last).
            signals = need & {"composite_score", "signal_action", *(f"signal_{r}" for r in RULE_IDS)}
            indicators = composites = rules = None  # only the sources the selection needs are read
            if ind_cols:
                indicators = background.submit(sources.read_indicators, store, chosen, first, last, spec, ind_cols)
            if signals:
                composites = background.submit(sources.read_composites, store, chosen, first, last, spec)
                rules = background.submit(sources.read_rules, store, chosen, first, last, spec)
            bars_end = label_end if need & set(label_columns(horizons)) else last
            inputs = Inputs(
                bars=sources.read_bars(store, chosen, first, bars_end, spec, fields, arrow=True),
                indicators=indicators,
                signals=None,
                caps=None,
                first_bar=pd.Series(dtype=object),
                coin_order=[names[c] for c in sorted(names)],  # rows sorted by CoinGecko id, as build_features does
                coin_labels=sorted(names),
                composites=composites,
                rules=rules,
            )
            if "age_days" in need:
                inputs.first_bar = sources.read_first_bars(store, chosen, spec)
            if "market_cap_rank" in need and not rank_from_bars:
                inputs.caps = sources.read_caps(store, first, last, spec)
            if need & {"index_member", "index_weight"}:
                constituents = sources.read_index_constituents(store, as_of_end, index_name)
                members = sorted(set(constituents["coin_id"]))
                inputs.constituents = constituents
                if members:
                    # A month before the first selection, so a close missing on a selection day is carried forward.
                    since = pd.Timestamp(constituents["selection_date"].min()).date() - dt.timedelta(days=31)
                    inputs.member_closes = sources.read_bars(store, members, since, as_of_end, fields=["close"])
            if need & set(ALT_FEATURES):
                inputs.alt = sources.read_alt(store, chosen, as_of_end)
            return assemble(inputs, horizons=horizons, naming=naming, timeframe=tf.name, start=first, end=last,
                            columns=columns)  # fmt: skip
    finally:
        if own:
            store.close()
