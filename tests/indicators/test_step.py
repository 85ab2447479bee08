"""The pipeline step: incremental runs equal a full recompute (rtol 1e-12, s = the column's mean |value| per
coin, docs/decisions.md#D31), after appends and after a filled hole; coverage gating; close-only rows; parallel
workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.indicators import compute_indicators
from kallos.indicators.contract import OUTPUT_COLUMNS, RECOMPUTE_HISTORY_BARS
from kallos.indicators.step import WARMUP_DAYS, compute_step
from kallos.settings import load_settings
from kallos.store import Store

from .indicator_data import assert_matches
from .test_formulas import random_bars

RTOL = 1e-12


def seed_coins(store: Store, coins: list[str]) -> None:
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))


def write_bars(store: Store, bars: pd.DataFrame) -> None:
    store.upsert("daily_market_data", bars[["coin_id", "date", "open", "high", "low", "close", "volume"]])


def candle_coin(n: int, seed: int) -> pd.DataFrame:
    return random_bars(n, seed).assign(coin_id=f"candle-{seed}")


def mixed_coin(n: int, seed: int) -> pd.DataFrame:
    """Candles with close-only stretches, as a coin whose OHLC history is shorter than its closes."""
    bars = random_bars(n, seed).assign(coin_id=f"mixed-{seed}")
    rng = np.random.default_rng(seed)
    close_only = rng.random(n) < 0.1
    close_only[:300] = True
    bars.loc[close_only, ["open", "high", "low"]] = np.nan
    return bars


def assert_store_equals_full(store: Store, bars: pd.DataFrame, approx: bool = False) -> None:
    stored = store.read("daily_technical_indicators")
    expected = compute_indicators(bars, close_only_approx=approx)
    assert len(stored) == len(expected)
    for coin, exp in expected.groupby("coin_id"):
        got = stored[stored["coin_id"] == coin]
        assert list(got["date"].dt.date) == list(exp["date"].dt.date)
        assert got["ohlc_source"].fillna("-").tolist() == exp["ohlc_source"].fillna("-").tolist()
        for name in OUTPUT_COLUMNS:
            assert_matches(got[name].to_numpy(), exp[name].to_numpy(), RTOL, f"{coin} {name}")


def test_incremental_append_equals_full(store: Store) -> None:
    n = RECOMPUTE_HISTORY_BARS + 400  # long enough that the incremental run re-reads only a tail
    bars = pd.concat([candle_coin(n, 1), mixed_coin(n, 2)], ignore_index=True)
    seed_coins(store, ["candle-1", "mixed-2"])
    settings = load_settings()
    old = bars[bars["date"] < bars["date"].max() - pd.Timedelta(days=30)]
    write_bars(store, old)
    first = compute_step(store, settings, workers=1)
    assert first["full"] == 2 and first["rows_written"] == len(old)
    write_bars(store, bars)
    second = compute_step(store, settings, workers=1)
    assert second["incremental"] == 2 and second["full"] == 0
    assert second["rows_written"] == len(bars) - len(old)
    assert_store_equals_full(store, bars)
    again = compute_step(store, settings, workers=1)
    assert again["up_to_date"] == 2 and again["rows_written"] == 0


@pytest.mark.parametrize("mark_dirty", [True, False], ids=["dirty_from", "detected"])
def test_filled_hole_recomputes_from_first_bar(duck_store: Store, mark_dirty: bool) -> None:
    store = duck_store
    bars = candle_coin(RECOMPUTE_HISTORY_BARS + 300, 5)
    hole = (bars.index >= 900) & (bars.index < 910)
    seed_coins(store, ["candle-5"])
    write_bars(store, bars[~hole])
    compute_step(store, load_settings(), workers=1)
    assert_store_equals_full(store, bars[~hole])
    write_bars(store, bars)  # the hole is filled: every later window shifts
    if mark_dirty:  # what ingestion records (docs/decisions.md#D33)
        store.upsert(
            "ingestion_watermarks",
            pd.DataFrame(
                {"coin_id": ["candle-5"], "series": ["indicators"], "dirty_from": [bars["date"].iloc[900]]}
            ),
        )
    counts = compute_step(store, load_settings(), workers=1)
    assert counts["full"] == 1 and counts["incremental"] == 0
    assert_store_equals_full(store, bars)
    marks = store.read("ingestion_watermarks")
    assert marks["dirty_from"].isna().all()
    assert marks["last_date"].iloc[0] == bars["date"].max()


def test_coverage_gate(duck_store: Store) -> None:
    store = duck_store
    dense = candle_coin(200, 6)
    sparse = candle_coin(400, 7).iloc[::2]  # every other day: 50% coverage
    seed_coins(store, ["candle-6", "candle-7"])
    write_bars(store, pd.concat([dense, sparse]))
    counts = compute_step(store, load_settings(), workers=1)
    assert counts["below_coverage"] == 1 and counts["full"] == 1
    assert set(store.read("daily_technical_indicators")["coin_id"]) == {"candle-6"}
    counts = compute_step(store, load_settings(), coins=["candle-7", "nope"], workers=1, min_coverage=0.45)
    assert counts["full"] == 1 and counts["unknown_coins"] == ["nope"]


def test_close_only_rows_null_unless_opted_in(duck_store: Store) -> None:
    store = duck_store
    bars = mixed_coin(500, 8)
    seed_coins(store, ["mixed-8"])
    write_bars(store, bars)
    compute_step(store, load_settings(), workers=1)
    stored = store.read("daily_technical_indicators")
    close_only = bars["high"].isna().to_numpy()
    assert stored.loc[close_only, "ohlc_source"].isna().all()
    assert stored.loc[close_only, ["atr_14", "adx_14", "cmf_20", "trend_quality"]].isna().all().all()
    assert stored.loc[close_only, "ema_50"].iloc[-5:].notna().all()
    # Switching the option recomputes the coin from its first bar and records the source of every row.
    counts = compute_step(store, load_settings(close_only_approx=True), workers=1)
    assert counts["full"] == 1
    assert_store_equals_full(store, bars, approx=True)
    stored = store.read("daily_technical_indicators")
    assert (stored.loc[close_only, "ohlc_source"] == "close_only_approx").all()


def test_parallel_workers_give_the_same_rows(duck_store: Store) -> None:
    store = duck_store
    bars = pd.concat([candle_coin(300, s) for s in (10, 11, 12)] + [mixed_coin(400, 13)], ignore_index=True)
    seed_coins(store, sorted(bars["coin_id"].unique()))
    write_bars(store, bars)
    counts = compute_step(store, load_settings(), workers=2, batch_coins=1)
    assert counts["full"] == 4 and counts["workers"] == 2
    assert_store_equals_full(store, bars)


def test_threads_give_the_same_rows(duck_store: Store) -> None:
    """KALLOS_EXECUTOR=threads: batches computed at the same time in threads of this process (the engine's
    TA-Lib calls and kernels run outside the GIL, docs/decisions.md#D125) store what one process stores."""
    store = duck_store
    bars = pd.concat([candle_coin(300, s) for s in (20, 21, 22, 23, 24)] + [mixed_coin(400, 25)], ignore_index=True)
    seed_coins(store, sorted(bars["coin_id"].unique()))
    write_bars(store, bars)
    counts = compute_step(store, load_settings(executor="threads"), workers=2, batch_coins=1)
    assert counts["full"] == 6 and counts["workers"] == 2
    assert_store_equals_full(store, bars)


@pytest.mark.shared_data
def test_incremental_equals_full_on_real_data(duck_store: Store, exchange_panel, coingecko_panel) -> None:
    """Real series with a stablecoin (tiny Bollinger widths) and a ~1000x price range."""
    store = duck_store
    bars = pd.concat(
        [
            exchange_panel[exchange_panel["coin_id"] == "Bitstamp_BTCUSD_d"],
            coingecko_panel[coingecko_panel["coin_id"].isin(["usdt", "doge"])],
        ],
        ignore_index=True,
    )
    coins = sorted(bars["coin_id"].unique())
    seed_coins(store, coins)
    cut = bars.groupby("coin_id")["date"].transform("max") - pd.Timedelta(days=20)
    write_bars(store, bars[bars["date"] <= cut])
    compute_step(store, load_settings(), workers=1, min_coverage=0.0)
    write_bars(store, bars)
    counts = compute_step(store, load_settings(), workers=1, min_coverage=0.0)
    assert counts["incremental"] == 3
    assert_store_equals_full(store, bars)


def test_incremental_reads_only_the_warm_up_window(duck_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long histories: the incremental run reads WARMUP_DAYS of bars, not the whole history, and still equals a
    full recompute; a coin whose window holds too few candle bars is read again from its first bar."""
    store = duck_store
    n = WARMUP_DAYS + 700
    sparse = candle_coin(n, 4).assign(coin_id="sparse-4")
    sparse.loc[n - 1500 : n - 300, ["open", "high", "low"]] = np.nan  # few candles in the warm-up window
    bars = pd.concat([candle_coin(n, 1), mixed_coin(n, 2), sparse], ignore_index=True)
    seed_coins(store, ["candle-1", "mixed-2", "sparse-4"])
    settings = load_settings()
    old = bars[bars["date"] < bars["date"].max() - pd.Timedelta(days=20)]
    write_bars(store, old)
    compute_step(store, settings, workers=1)
    write_bars(store, bars)
    reads: list[tuple[tuple[str, ...], object]] = []
    real_read = store.read

    def spy(table: str, **kwargs: object) -> pd.DataFrame:
        if table == "daily_market_data":
            reads.append((tuple(kwargs["coins"]), kwargs.get("start")))  # type: ignore[arg-type]
        return real_read(table, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "read", spy)
    second = compute_step(store, settings, workers=1)
    monkeypatch.undo()
    assert second["incremental"] == 3 and second["full"] == 0
    assert reads[0][1] is not None and len(reads[0][0]) == 3  # the window, for every incremental coin
    assert reads[1] == (("sparse-4",), None)  # too few candle bars in it: its whole history
    assert len(reads) == 2
    stored = store.read("daily_technical_indicators")
    expected = compute_indicators(bars)
    assert len(stored) == len(expected)
    for coin, exp in expected.groupby("coin_id"):
        got = stored[stored["coin_id"] == coin]
        for name in OUTPUT_COLUMNS:
            # price_bb_diff divides by TA-Lib's band width, whose running sums drift with the history length
            # (docs/decisions.md#D110: 1.7e-12 on this 2,350-bar history); every other column holds 1e-12.
            rtol = 1e-10 if name == "price_bb_diff" else RTOL
            assert_matches(got[name].to_numpy(), exp[name].to_numpy(), rtol, f"{coin} {name}")


def test_the_contract_step_reports_progress_and_its_outcome(duck_store: Store) -> None:
    import datetime as dt

    from kallos.indicators.step import indicators_step
    from kallos.pipeline.contract import StepContext

    class Recorder:
        def __init__(self) -> None:
            self.events: list[tuple[str, object]] = []

        def start(self, label: str, total: int | None = None) -> None:
            self.events.append(("start", (label, total)))

        def advance(self, n: int = 1) -> None:
            self.events.append(("advance", n))

        def finish(self) -> None:
            self.events.append(("finish", None))

    bars = pd.concat([candle_coin(300, 11), candle_coin(300, 12)], ignore_index=True)
    seed_coins(duck_store, ["candle-11", "candle-12"])
    write_bars(duck_store, bars)
    progress = Recorder()
    ctx = StepContext(
        store=duck_store, settings=load_settings(), run_id="r", now=dt.datetime.now(dt.UTC), progress=progress
    )
    outcome = indicators_step(ctx, workers=1, batch_coins=1)
    assert outcome.status == "success" and outcome.coins_ok == 2 and outcome.rows_written == len(bars)
    assert outcome.extra["full"] == 2 and outcome.failures == {}
    assert progress.events == [("start", ("indicators", 2)), ("advance", 1), ("advance", 1), ("finish", None)]
