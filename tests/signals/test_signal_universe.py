"""The signals universe leaves out stablecoins and wrapped, staked or bridged tokens (docs/decisions.md#D66)."""

from __future__ import annotations

import pandas as pd
import pytest

from kallos.errors import DataValidationError
from kallos.settings import load_settings
from kallos.signals.step import evaluate_step, generate_step
from kallos.signals.universe import signal_rules, split_universe
from kallos.store import Store

from .signal_frames import realistic_frame
from .test_signal_step import seed


def test_split_uses_the_index_category_rules() -> None:
    categories = pd.DataFrame(
        {
            "coin_id": ["usd-thing", "lst", "memecoin"],
            "category_id": ["usd-stablecoin", "liquid-staking-tokens", "meme-token"],
            "name": ["USD Stablecoin", "Liquid Staking Tokens", "Meme"],
        }
    )
    coins = ["bitcoin", "tether", "wrapped-bitcoin", "usd-thing", "lst", "memecoin"]
    kept, dropped = split_universe(coins, categories, None, ("default",))
    assert kept == ["bitcoin", "memecoin"]
    assert dropped == ["tether", "wrapped-bitcoin", "usd-thing", "lst"]
    assert split_universe(coins, categories, None, ())[0] == coins  # `none`: every coin
    kept, _ = split_universe(coins, categories, None, ("default", "meme-token"))
    assert kept == ["bitcoin"]
    assert signal_rules(load_settings(signals_excluded_categories="none")) == ()
    assert signal_rules() == ("default",)


def test_generation_and_evaluation_skip_excluded_coins(store: Store) -> None:
    f = pd.concat(
        [realistic_frame(120, "alpha", 21), realistic_frame(120, "tether", 22), realistic_frame(120, "beta", 23)],
        ignore_index=True,
    )
    seed(store, f)
    store.upsert("coin_categories", pd.DataFrame({"coin_id": ["beta"], "category_id": ["wrapped-tokens"]}))
    counts = generate_step(store)
    assert counts["excluded"] == 2 and counts["coins"] == 1
    assert set(store.read("trading_signals")["coin_id"]) == {"alpha"}
    assert set(evaluate_step(store, (1,)).columns)  # evaluates alpha

    everyone = load_settings(database_url="duckdb:///x.duckdb", signals_excluded_categories="none")
    assert generate_step(store, everyone)["coins"] == 2
    assert set(store.read("trading_signals")["coin_id"]) == {"alpha", "beta", "tether"}
    report_all = evaluate_step(store, (1,), settings=everyone)
    report_default = evaluate_step(store, (1,))
    assert report_all["occurrences"].sum() > report_default["occurrences"].sum()
    with pytest.raises(DataValidationError):
        evaluate_step(store, (1,), coins=["tether"])  # only excluded signals: nothing to evaluate
