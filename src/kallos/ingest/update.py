"""`kallos market update`: refresh every tracked coin from `/coins/markets`, fill gaps with targeted charts.

One `/coins/markets` sweep (250 ids per call: ⌈N/250⌉ calls) gives every tracked active coin's current price, cap
and volume. They go to `market_snapshots` (provisional). Where a coin's finished days come from depends on
`KALLOS_DAILY_CLOSE_SOURCE` (docs/decisions.md#D5, D117):

- `chart`: every coin's new final days come from its `market_chart/range` (plus `ohlc/range` candles on paid
  plans): the calls that finish days, reported as `chart_calls` and `ohlc_calls`;
- `markets`: a sweep taken inside the close window of day D (00:00 to `close_window_minutes` after) is stored as
  day D's final bar (`close_source=markets`, its real timestamp kept), unless D already has a bar; a chart call is
  made only for a coin whose watermark shows a real gap (or whose stored history has holes);
- `mixed` (the default on pro): the exact-close universe (`KALLOS_EXACT_CLOSE_TOP` and every index's candidates,
  :func:`kallos.ingest.select.exact_close_coins`) is updated as in `chart` mode, every other coin as in `markets`
  mode (its gap fills without candles). A coin entering the universe is fetched from the day after its last
  candle day, so the days it took from the sweep are replaced by chart closes with candles (D121).

:func:`plan_market_day` decides all of that before the first chart call; the run and `kallos plan daily` share it,
so the planner's figure is what the run spends. A final day is never overwritten by a provisional value.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from kallos import clock
from kallos.coingecko import plans
from kallos.ingest import frames
from kallos.ingest.archive import attach_archive
from kallos.ingest.backfill import plan_name
from kallos.ingest.market import HistoryFetcher, Window, check_api_clock, expected_calls, midnight
from kallos.ingest.runner import RunCounts, api_mark, quarantined, run_per_coin
from kallos.ingest.select import exact_close_coins, stored_ranks, tracked_coins
from kallos.ingest.state import (
    CHART,
    CoinWrite,
    Watermark,
    previous_bars,
    read_watermarks,
    write_coins,
)
from kallos.ingest.validation import QUARANTINED, validate_sweep
from kallos.log import get_logger
from kallos.pipeline.contract import Progress, StepContext, StepOutcome
from kallos.pipeline.progress import as_progress
from kallos.store import Store

log = get_logger("kallos.ingest.update")
MARKETS_SOURCE = "coins/markets"
CHART_ENDPOINT = "/coins/{id}/market_chart/range"
OHLC_ENDPOINT = "/coins/{id}/ohlc/range"
MARKETS_ENDPOINT = "/coins/markets"


def in_close_window(now: dt.datetime, minutes: int) -> bool:
    return now - midnight(now.date()) < dt.timedelta(minutes=minutes)


NOTHING_TRACKED = "no coins tracked yet: start with `kallos market backfill --top N`"


@dataclass(frozen=True)
class MarketDay:
    """What one daily update does, decided before its first chart call (docs/decisions.md#D121)."""

    mode: str
    """`chart`, `markets` or `mixed` (`KALLOS_DAILY_CLOSE_SOURCE`, D5 and D117)."""
    plan: str
    tracked: tuple[str, ...]
    exact: frozenset[str]
    """Coins whose final days come from their chart (with candles on paid plans)."""
    close_day: dt.date | None
    """The day a close-window sweep finishes (markets and mixed modes, inside the window), else None."""
    windows: Mapping[str, Window] = field(default_factory=dict)
    """The coins that need a chart call, with their windows."""
    candles: frozenset[str] = frozenset()
    """The coins of `windows` whose window also fetches candles."""
    entries: frozenset[str] = frozenset()
    """Exact coins fetched back to the day after their last candle day: they enter the universe (D121)."""

    @property
    def sweep_coins(self) -> list[str]:
        """The coins whose `close_day` may come from the sweep."""
        if self.close_day is None:
            return []
        return [c for c in self.tracked if c not in self.exact]

    def chart_calls(self) -> dict[str, int]:
        """The per-coin calls (chart and candles) by endpoint; with :func:`sweep_calls`, the step's cost."""
        out: dict[str, int] = {}
        for coin, window in self.windows.items():
            for endpoint, n in expected_calls(window, self.plan, coin in self.candles).items():
                out[endpoint] = out.get(endpoint, 0) + n
        return out


def sweep_calls(n_tracked: int) -> int:
    """`/coins/markets?ids=` pages for the tracked coins (250 ids a call)."""
    return plans.markets_pages(n_tracked) if n_tracked else 0


def plan_market_day(
    fetcher: HistoryFetcher, settings: Any, *, tracked: Sequence[str], ranks: Mapping[str, int | None]
) -> MarketDay:
    """Which coins get exact closes, and each coin's window, for a daily update at `fetcher.now`.

    Pure but for the store reads of the exact-close universe (index definitions, exclusions, constituents)."""
    now, plan = fetcher.now, fetcher.plan
    mode = settings.effective_close_source
    last_final = clock.last_final_day(now)
    close_day = (
        now.date()
        if mode in ("markets", "mixed") and in_close_window(now, settings.close_window_minutes)
        else None
    )
    if mode == "chart":
        exact = set(tracked)
    elif mode == "markets":
        exact = set()
    else:
        exact = exact_close_coins(fetcher.store, settings, ranks) & set(tracked)
    # Inside the close window, day D of a sweep coin comes from the sweep: charts only fill the days before it.
    sweep_through = min(last_final, close_day - dt.timedelta(days=1)) if close_day else last_final
    windows: dict[str, Window] = {}
    candles: set[str] = set()
    entries: set[str] = set()
    for coin in tracked:
        if coin in exact:
            window = fetcher.window(coin, last_final=last_final)
            if fetcher.candles and mode == "mixed":
                window, entered = _exact_entry(fetcher, coin, window, last_final)
                if entered:
                    entries.add(coin)
            with_candles = fetcher.candles
        else:
            window = fetcher.window(coin, last_final=sweep_through)
            # `markets` keeps its meaning (gap fills with candles on paid plans); mixed sweep coins get none.
            with_candles = fetcher.candles and mode == "markets"
        if window is not None:
            windows[coin] = window
            if with_candles:
                candles.add(coin)
    return MarketDay(
        mode, plan, tuple(tracked), frozenset(exact), close_day, windows, frozenset(candles), frozenset(entries)
    )


def _exact_entry(
    fetcher: HistoryFetcher, coin: str, window: Window | None, last_final: dt.date
) -> tuple[Window | None, bool]:
    """An exact coin whose candles stop before its chart watermark took days from the sweep while it was outside
    the universe: its window starts the day after its last candle day (docs/decisions.md#D121)."""
    chart, ohlc = fetcher.chart_wms.get(coin), fetcher.ohlc_wms.get(coin)
    if chart is None or ohlc is None or chart.last_date is None or ohlc.last_date is None:
        return window, False
    if ohlc.last_date >= min(chart.last_date, last_final):
        return window, False
    start = ohlc.last_date + dt.timedelta(days=1)
    if window is None:
        return Window(coin, start, last_final, reasons=["exact_entry"]), True
    if start >= window.start:
        return window, False
    return replace(window, start=start, reasons=[*window.reasons, "exact_entry"]), True


async def daily_update(
    store: Store, client: Any, settings: Any, progress: bool | Progress = False
) -> dict[str, Any]:
    """Refresh every tracked coin; returns the step's counts (:meth:`StepOutcome.counts`)."""
    ctx = StepContext.direct(store, settings, client=client, progress=as_progress(progress))
    return (await update_step(ctx)).counts()


async def update_step(ctx: StepContext) -> StepOutcome:
    """The daily update as a step (docs/decisions.md#D37)."""
    store, client, settings, now = ctx.store, ctx.require_client(), ctx.settings, ctx.now
    started = time.perf_counter()
    counts = RunCounts()
    before = api_mark(client)
    archive = attach_archive(store, client, settings)
    last_final = clock.last_final_day(now)
    plan = plan_name(client, settings)
    # The exact-close universe follows the ranks of the previous sweep, read before anything of this run updates
    # them, so `kallos plan daily` prices exactly what this run does (docs/decisions.md#D121).
    prior = stored_ranks(store, None)
    if settings.universe_top:  # new entrants of the configured universe first (docs/decisions.md#D56)
        from kallos.ingest.entrants import backfill_entrants

        entrants, done = await backfill_entrants(ctx, last_final=last_final)
        counts.extra.update(entrants)
        if done is not None:
            counts.rows_written += done.rows_written
            counts.rows_quarantined += done.rows_quarantined
            events = done.extra.get("events", 0)
            counts.events += events if isinstance(events, int) else 0
            counts.failed.update(done.failures)
    tracked = tracked_coins(store, active_only=True)
    if not tracked:
        log.warning("no tracked coins: run `kallos market backfill --coins ... | --top N` first")
        return counts.outcome(status="skipped", reason=NOTHING_TRACKED)

    ranks = {c: prior.get(c) for c in tracked}  # a coin never ranked before takes this sweep's rank

    # 1. One sweep for all tracked coins; it refreshes their market-cap ranks for the next run.
    markets_calls0 = client.stats.by_endpoint.get(MARKETS_ENDPOINT, 0)
    rows = await client.coins_markets(ids=tracked)
    check_api_clock(client, now)  # before anything of the sweep is stored (docs/decisions.md#D55)
    markets_calls = client.stats.by_endpoint.get(MARKETS_ENDPOINT, 0) - markets_calls0
    sweep = frames.markets_frame(rows, now)
    sweep = sweep[sweep["coin_id"].isin(set(tracked))]
    with store.transaction():
        store.upsert("market_snapshots", frames.snapshots_from_markets(sweep))
        if not sweep.empty:
            store.upsert(
                "coins",
                pd.DataFrame(
                    {
                        "coingecko_id": sweep["coin_id"],
                        "symbol": sweep["symbol"],
                        "name": sweep["name"],
                        "market_cap_rank": sweep["market_cap_rank"],
                        "last_seen": now,
                    }
                ),
            )
    for r in rows:
        if r.id in ranks and ranks[r.id] is None:
            ranks[r.id] = r.market_cap_rank
    not_listed = sorted(set(tracked) - set(sweep["coin_id"]))
    if not_listed:
        log.warning(
            "%d tracked coin(s) missing from /coins/markets (delisted?)",
            len(not_listed),
            extra={"coins_missing": not_listed[:20]},
        )

    # 2. Charts: the exact coins' new final days, and the gaps of the others (docs/decisions.md#D5, D117).
    fetcher = HistoryFetcher.for_run(
        store, client, plan=plan, now=now, candles=plans.get_plan(plan).paid, coins=tracked
    )
    day = plan_market_day(fetcher, settings, tracked=tracked, ranks=ranks)
    closeonly = replace(fetcher, candles=False)

    async def fill(coin: str) -> CoinWrite | None:
        window = day.windows.get(coin)
        if window is None:
            return None
        return await (fetcher if coin in day.candles else closeonly).fetch(window)

    chart_calls0 = client.stats.by_endpoint.get(CHART_ENDPOINT, 0)
    ohlc_calls0 = client.stats.by_endpoint.get(OHLC_ENDPOINT, 0)
    await run_per_coin(
        store,
        tracked,
        fill,
        counts,
        batch_size=max(1, settings.concurrency * 4),
        progress=ctx.progress,
        label="update",
        run_id=ctx.run_id or None,
        after_batch=archive.flush,
    )
    chart_calls = client.stats.by_endpoint.get(CHART_ENDPOINT, 0) - chart_calls0
    ohlc_calls = client.stats.by_endpoint.get(OHLC_ENDPOINT, 0) - ohlc_calls0

    # 3. Inside the close window: the sweep is day D's final value for the coins outside the exact universe.
    finals = 0
    if day.close_day is not None and not sweep.empty:
        outside = sweep[sweep["coin_id"].isin(set(day.sweep_coins))]
        if not outside.empty:
            finals = _store_markets_closes(store, outside, day.close_day, counts, fetcher.stable)
    counts.coins = len(set(tracked) - set(counts.failed))
    counts.measure_api(client, before)
    counts.extra.update(
        {
            "mode": day.mode,
            "exact_coins": len(day.exact),
            "markets_calls": markets_calls,
            "chart_calls": chart_calls,
            "ohlc_calls": ohlc_calls,
            "gap_fills": sum(1 for c in day.windows if c not in day.exact),
            "exact_entries": len(day.entries),
            "markets_closes": finals,
            "not_listed": len(not_listed),
            "calls_per_coin_day": calls_per_coin(counts.api_calls, len(tracked)),
        }
    )
    return counts.finish("daily update finished", started)


def estimate_daily(
    store: Store, settings: Any, *, now: dt.datetime, rate_per_minute: float | None = None
) -> dict[str, Any]:
    """`kallos plan daily`: the calls the next daily update makes at `now`, coin by coin (no API call, no write).

    It runs :func:`plan_market_day`, the run's own decision, on the stored watermarks and the market-cap ranks of
    the last sweep (the run ranks by its own sweep, so a coin crossing the universe's edge since then changes the
    figure by its own cost). New entrants of `KALLOS_UNIVERSE_TOP` are not known without listing today's top N:
    their budget (`KALLOS_ENTRANT_CALLS_PER_RUN`) is reported beside, not added (docs/decisions.md#D121)."""
    plan = settings.coingecko_plan
    paid = plans.get_plan(plan).paid
    tracked = tracked_coins(store, active_only=True)
    fetcher = HistoryFetcher.for_run(store, None, plan=plan, now=now, candles=paid, coins=tracked)
    day = plan_market_day(fetcher, settings, tracked=tracked, ranks=stored_ranks(store, tracked))
    by_endpoint: dict[str, int] = {}
    top = settings.universe_top or 0
    listing = plans.markets_pages(top) if top else 0
    if tracked or listing:
        by_endpoint[MARKETS_ENDPOINT] = sweep_calls(len(tracked)) + listing
    by_endpoint.update(day.chart_calls())
    calls = sum(by_endpoint.values())
    rate = rate_per_minute or settings.effective_rate_limit
    return {
        "plan": plan,
        "mode": day.mode,
        "now": now.isoformat(),
        "close_window": day.close_day is not None,
        "coins": len(tracked),
        "exact_coins": len(day.exact),
        "exact_close_top": settings.exact_close_top if day.mode == "mixed" else None,
        "sweep_closes": len(day.sweep_coins),
        "coins_to_fetch": len(day.windows),
        "gap_fills": sum(1 for c in day.windows if c not in day.exact),
        "exact_entries": len(day.entries),
        "calls": calls,
        "credits": calls * plans.credits_for(200),
        "by_endpoint": by_endpoint,
        "calls_per_coin_day": calls_per_coin(calls, len(tracked)),
        "steady_calls": plans.daily_update_calls(len(tracked), len(day.exact), paid=paid),
        "chart_mode_calls": plans.daily_update_calls(len(tracked), len(tracked), paid=paid),
        "entrant_calls_max": settings.entrant_calls_per_run if top else 0,
        "rate_per_minute": rate,
        "minutes": round(plans.minutes_for(calls, rate), 2),
    }


def calls_per_coin(calls: int, coins: int) -> float:
    """API calls per coin the step keeps: one run a day makes it the calls per coin per day (D121)."""
    return round(calls / coins, 4) if coins else 0.0


def _store_markets_closes(
    store: Store, sweep: pd.DataFrame, day: dt.date, counts: RunCounts, stable: set[str]
) -> int:
    """Write day `day`'s final bars from the sweep for coins whose day has no chart close yet."""
    existing = store.read("daily_market_data", start=day, end=day, columns=["date", "close_source"])
    # The first close-window sweep makes day D final; later sweeps and provisional values never replace it.
    has_chart = set(existing["coin_id"])
    stamp_day = pd.to_datetime(sweep["snapped_at"], utc=True).dt.date
    todo = sweep[~sweep["coin_id"].isin(has_chart) & (stamp_day == day).to_numpy()]
    if todo.empty:
        return 0
    wms = read_watermarks(store, CHART, list(todo["coin_id"]))
    prev = {c: close for c, (_, close) in previous_bars(store, day).items()}
    good_all, events_all = validate_sweep(
        todo[["coin_id", "snapped_at", "close", "market_cap", "volume"]],
        source=MARKETS_SOURCE,
        prev_close=prev,
        stablecoins=stable,
    )
    good_by = dict(tuple(good_all.groupby("coin_id", sort=False)))
    events_by = dict(tuple(events_all.groupby("coin_id", sort=False))) if not events_all.empty else {}
    writes = []
    for coin in todo["coin_id"]:
        wm = wms.get(coin) or Watermark(coin, CHART)
        good = good_by.get(coin, good_all.iloc[0:0])
        events = events_by.get(coin, events_all.iloc[0:0])
        if wm.last_date is not None and wm.last_date >= day - dt.timedelta(days=1) and not good.empty:
            wm.last_date = max(wm.last_date, day)
        if not events.empty:
            wm.missing |= {
                d.date() for d in pd.to_datetime(events.loc[events["action"] == QUARANTINED, "date"])
            }
        writes.append(CoinWrite(coin, good.assign(close_source="markets"), events, watermarks=[wm]))
    n = 0
    for start in range(0, len(writes), 250):
        chunk = writes[start : start + 250]
        done = write_coins(store, chunk)
        for w in chunk:
            rows, n_events = done[w.coin_id]
            counts.rows_written += rows
            counts.rows_quarantined += quarantined(w)
            counts.events += n_events
            n += len(w.bars)
    return n
