"""Which coins get signals: not stablecoins, nor wrapped, staked or bridged tokens (docs/decisions.md#D66).

The same category rules as the index's exclusions (`kallos.index.exclusions.excluded_by_rules`), configured by
`KALLOS_SIGNALS_EXCLUDED_CATEGORIES` (default `default`: the shipped rules; `none`: every coin). A pegged or
wrapped coin's price follows another asset, so its "signals" only repeat the peg's noise or the underlying's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from kallos.index.definition import parse_categories
from kallos.index.exclusions import excluded_by_rules

DEFAULT_RULES = "default"


def signal_rules(settings: Any = None) -> tuple[str, ...]:
    """The configured rules (the default rules without settings)."""
    return parse_categories(getattr(settings, "signals_excluded_categories", DEFAULT_RULES))


def split_universe(
    coins: Iterable[str], categories: pd.DataFrame | None, coin_table: pd.DataFrame | None, rules: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(kept, excluded) of ``coins`` under ``rules``, from the stored categories and coin rows. Pure."""
    excluded = excluded_by_rules(categories, coin_table, rules)
    kept: list[str] = []
    dropped: list[str] = []
    for coin in coins:
        (dropped if coin in excluded else kept).append(coin)
    return kept, dropped


def excluded_signal_coins(store: Any, settings: Any = None) -> set[str]:
    """The stored coins left out of signal generation and evaluation (reads `coin_categories` and `coins`)."""
    rules = signal_rules(settings)
    if not rules:
        return set()
    from kallos.index.step import read_exclusion_inputs

    return excluded_by_rules(*read_exclusion_inputs(store), rules)
