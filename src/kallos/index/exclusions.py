"""Which coins never enter the index: stablecoins, wrapped, bridged and staked tokens.

Two sources, unioned: the CoinGecko categories stored in `coin_categories` (and `coins.category`),
matched by category id or by the category's name turned into an id ("Liquid Staking Tokens" ->
liquid-staking-tokens), and a shipped list of known ids for stores that hold no categories. Both are
documented in docs/index.md; CoinGecko's categories are current-state only, so the explicit list also
catches coins whose category was never fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

EXCLUDED_CATEGORIES: frozenset[str] = frozenset(
    {
        # stablecoins and pegged assets
        "stablecoins",
        "usd-stablecoin",
        "eur-stablecoin",
        "gbp-stablecoin",
        "cny-stablecoin",
        "krw-stablecoin",
        "fiat-backed-stablecoin",
        "crypto-backed-stablecoin",
        "algorithmic-stablecoin",
        "yield-bearing-stablecoins",
        "bridged-stablecoins",
        "tokenized-gold",
        # wrapped and bridged representations of another coin
        "wrapped-tokens",
        "bridged-tokens",
        "tokenized-btc",
        # staked derivatives
        "liquid-staking-tokens",
        "liquid-restaking-tokens",
        "liquid-staked-eth",
        "eth-2-0-staking",
    }
)
"""CoinGecko category ids whose coins are excluded (ids as served by `/coins/categories/list`)."""

_STABLE_SUFFIX = re.compile(r"(^|-)stablecoins?$")

# fmt: off
EXCLUDED_COIN_IDS: frozenset[str] = frozenset(
    {
        # USD and other fiat stablecoins
        "tether", "usd-coin", "binance-usd", "dai", "true-usd", "paxos-standard", "gemini-dollar",
        "husd", "usdd", "first-digital-usd", "frax", "liquity-usd", "ethena-usde", "usds", "paypal-usd",
        "terrausd", "nusd", "susd", "magic-internet-money", "fei-usd", "usdb", "stasis-eurs", "tether-eurt",
        "euro-coin", "celo-dollar", "usual-usd", "ripple-usd", "global-dollar", "pax-gold", "tether-gold",
        # wrapped and bridged tokens
        "wrapped-bitcoin", "weth", "wrapped-eth", "wbnb", "wrapped-solana", "wrapped-avax", "wrapped-fantom",
        "wmatic", "wrapped-tron", "renbtc", "huobi-btc", "coinbase-wrapped-btc", "wrapped-steth",
        "bitcoin-bep2", "binance-peg-bitcoin-cash", "binance-bitcoin", "binance-peg-dogecoin",
        "bridged-usdc-polygon-pos-bridge", "solv-btc", "lombard-staked-btc",
        # liquid-staking and restaking derivatives
        "staked-ether", "rocket-pool-eth", "coinbase-wrapped-staked-eth", "frax-ether", "staked-frax-ether",
        "mantle-staked-ether", "msol", "jito-staked-sol", "blazestake-staked-sol", "marinade-staked-sol",
        "stakewise-v3-oseth", "ankreth", "benqi-liquid-staked-avax", "stader-ethx", "wrapped-eeth",
        "ether-fi-staked-eth", "renzo-restaked-eth", "kelp-dao-restaked-eth", "binance-staked-sol",
        "jupiter-staked-sol", "wrapped-beacon-eth", "sweth", "stakestone-ether",
    }
)
# fmt: on
"""Known stablecoin, wrapped, bridged and staked CoinGecko ids excluded even when no category is stored."""


def category_key(value: object) -> str:
    """A category id or display name as an id: lower case, runs of non-alphanumerics as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", str(value).strip().lower()).strip("-")


def is_excluded_category(value: object) -> bool:
    key = category_key(value)
    return key in EXCLUDED_CATEGORIES or bool(_STABLE_SUFFIX.search(key))


def excluded_coins(
    categories: pd.DataFrame | None = None,
    coins: pd.DataFrame | None = None,
    *,
    extra: Iterable[str] = (),
    categories_to_exclude: Iterable[str] | None = None,
    explicit: Iterable[str] | None = None,
) -> set[str]:
    """The excluded CoinGecko ids: category matches in ``categories`` (coin_id, category_id, name) and
    ``coins`` (coin_id or coingecko_id, category), the explicit list, and ``extra``."""
    if categories_to_exclude is None:
        matches = is_excluded_category
    else:
        wanted = {category_key(c) for c in categories_to_exclude}

        def matches(value: object) -> bool:
            return category_key(value) in wanted

    out: set[str] = set(EXCLUDED_COIN_IDS if explicit is None else explicit)
    out.update(extra)
    if categories is not None and not categories.empty:
        for column in ("category_id", "name"):
            if column in categories.columns:
                values = categories[column]
                hit = values.notna() & values.map(lambda v: bool(matches(v)) if pd.notna(v) else False)
                out.update(categories.loc[hit.astype(bool), "coin_id"].astype(str))
    if coins is not None and not coins.empty and "category" in coins.columns:
        id_col = "coingecko_id" if "coingecko_id" in coins.columns else "coin_id"
        cats = coins["category"]
        hit = cats.map(lambda v: bool(matches(v)) if pd.notna(v) else False).astype(bool)
        out.update(coins.loc[hit, id_col].astype(str))
    return out


def excluded_by_rules(
    categories: pd.DataFrame | None, coins: pd.DataFrame | None, rules: Iterable[str]
) -> set[str]:
    """The coins excluded by configured rules (``KALLOS_INDEX_EXCLUDED_CATEGORIES``,
    ``KALLOS_SIGNALS_EXCLUDED_CATEGORIES``, ``--exclude-categories``): ``default`` is the shipped exclusions
    (the category rules and the explicit list above); every other entry is a CoinGecko category id or name
    whose coins are excluded too. No rules exclude nothing (docs/decisions.md#D66)."""
    keys = [category_key(r) for r in rules if str(r).strip()]
    out: set[str] = set()
    if "default" in keys:
        out |= excluded_coins(categories, coins)
    extra = [k for k in keys if k not in ("default", "none")]
    if extra:
        out |= excluded_coins(categories, coins, categories_to_exclude=extra, explicit=())
    return out
