"""The pipeline step: read bars from the store, compute what is new per coin in worker processes, upsert.

Per coin (docs/decisions.md#D33): the `ingestion_watermarks` row (coin, 'indicators') holds the last computed
bar (`last_date`) and the earliest market-data date changed since (`dirty_from`, set by ingestion). A change
before `last_date`, a bar count that no longer matches the stored rows (a hole filled by a writer that did
not set `dirty_from`), a switch of the close-only option, or `--full` recomputes the coin from its first
bar. Otherwise only the new bars are written, computed from the last RECOMPUTE_HISTORY_BARS bars before them
(see contract.py for why that is exact to far below 1e-12); OBV, a running total from the first bar, is
continued from its stored value. Workers are processes that return frames; only the parent touches the
store (docs/decisions.md#D13).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kallos.errors import DataValidationError
from kallos.indicators.contract import OUTPUT_COLUMNS, RECOMPUTE_HISTORY_BARS
from kallos.indicators.engine import compute_indicators
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.scale.executor import get_executor
from kallos.timeframes import SPECS, TimeframeSpec, spec

if TYPE_CHECKING:
    from kallos.scale.executor import Executor
    from kallos.settings import Settings
    from kallos.store import Store

__all__ = ["compute_jobs", "coverage_table", "compute_step", "default_workers", "indicators_step"]

log = get_logger(__name__)

SERIES = "indicators"
BATCH_COINS = 100
_BAR_COLUMNS = ["date", "open", "high", "low", "close", "volume"]
_OUT_COLUMNS = ["coin_id", "date", "ohlc_source", *OUTPUT_COLUMNS]
# Imported once by the local pool's forkserver, not by each worker: this module (the workers unpickle its
# `_compute_batch`) and the engine with its kernels loaded (docs/decisions.md#D118).
_PRELOAD = ["kallos.indicators.step", "kallos.indicators.warm"]


def default_workers() -> int:
    """CPU count - 1 (at least 1): one core stays free for the parent, which reads and writes the store."""
    return max(1, (os.cpu_count() or 2) - 1)


def coverage_table(store: Store, tf: TimeframeSpec = SPECS["1d"]) -> pd.DataFrame:
    """Per coin: first and last bar, and coverage as docs/decisions.md#D22 defines it (KALLOS_MIN_COVERAGE).

    Coverage = stored rows / calendar days over the last min(365, days since the first bar) days ending at the
    coin's last bar. Hourly and weekly bars count hours and weeks over the same 365 days (docs/decisions.md#D85).
    """
    if tf.name != "1d":
        return _coverage_other(store, tf)
    frame = store.query(
        """
        WITH s AS (
            SELECT coin_id, MIN(date) AS first_date, MAX(date) AS last_date, COUNT(*) AS n_all
            FROM daily_market_data GROUP BY coin_id
        )
        SELECT c.coingecko_id AS coin_id, s.first_date, s.last_date, s.n_all,
               (SELECT COUNT(*) FROM daily_market_data d
                 WHERE d.coin_id = s.coin_id AND d.date > s.last_date - 365) AS n_recent
        FROM s JOIN coins c ON c.coin_id = s.coin_id
        ORDER BY c.coingecko_id
        """
    )
    if frame.empty:
        return frame.assign(window_days=pd.Series(dtype="int64"), coverage=pd.Series(dtype="float64"))
    span = (pd.to_datetime(frame["last_date"]) - pd.to_datetime(frame["first_date"])).dt.days + 1
    window = np.minimum(span.to_numpy(), 365)
    rows = np.where(span.to_numpy() <= 365, frame["n_all"].to_numpy(), frame["n_recent"].to_numpy())
    return frame.assign(window_days=window, coverage=rows / window)


def _coverage_other(store: Store, tf: TimeframeSpec) -> pd.DataFrame:
    t, table = f'"{tf.time_column}"', tf.market_table
    back = "INTERVAL '365 days'" if tf.name == "1h" else "365"
    frame = store.query(
        f"""
        WITH s AS (
            SELECT coin_id, MIN({t}) AS first_date, MAX({t}) AS last_date, COUNT(*) AS n_all
            FROM {table} GROUP BY coin_id
        )
        SELECT c.coingecko_id AS coin_id, s.first_date, s.last_date, s.n_all,
               (SELECT COUNT(*) FROM {table} d
                 WHERE d.coin_id = s.coin_id AND d.{t} > s.last_date - {back}) AS n_recent
        FROM s JOIN coins c ON c.coin_id = s.coin_id
        ORDER BY c.coingecko_id
        """
    )
    if frame.empty:
        return frame.assign(window_days=pd.Series(dtype="int64"), coverage=pd.Series(dtype="float64"))
    for col in ("first_date", "last_date"):
        frame[col] = _naive(frame[col])
    span = ((frame["last_date"] - frame["first_date"]) / tf.step).astype("int64").to_numpy() + 1
    window = np.minimum(span, int(pd.Timedelta(days=365) / tf.step))
    rows = np.where(span <= window, frame["n_all"].to_numpy(), frame["n_recent"].to_numpy())
    return frame.assign(window_days=window, coverage=rows / window)


def _naive(s: pd.Series) -> pd.Series:
    """UTC instants as naive datetimes: hourly stamps and daily dates compare on one scale in the planner."""
    s = pd.to_datetime(s)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[ns]")


@dataclass
class _Plan:
    coin_id: str
    mode: str  # "full" | "incremental"
    last_done: pd.Timestamp | None
    write_from: pd.Timestamp | None  # incremental: first date to write


def _plan(
    stats: pd.DataFrame,
    marks: pd.DataFrame,
    done: pd.DataFrame,
    *,
    full: bool,
    approx: bool,
    step: pd.Timedelta = pd.Timedelta(days=1),
) -> tuple[list[_Plan], int]:
    marks = marks.set_index("coin_id") if not marks.empty else marks
    done = done.set_index("coin_id") if not done.empty else done
    plans, up_to_date = [], 0
    for row in stats.itertuples(index=False):
        coin = row.coin_id
        last_bar = pd.Timestamp(row.last_date)
        mark = marks.loc[coin] if coin in marks.index else None
        last_done = dirty = None
        same_option = True
        if mark is not None and pd.notna(mark["last_date"]):
            last_done = pd.Timestamp(mark["last_date"])
            dirty = pd.Timestamp(mark["dirty_from"]) if pd.notna(mark["dirty_from"]) else None
            state = json.loads(mark["state"]) if isinstance(mark["state"], str) and mark["state"] else {}
            if state.get("last_bar"):  # hourly: the watermark's DATE cannot hold the hour
                last_done = pd.Timestamp(state["last_bar"])
            same_option = bool(state.get("close_only_approx", False)) == approx
        elif coin in done.index:
            last_done = pd.Timestamp(done.loc[coin, "last_date"])
        if full or last_done is None or not same_option or (dirty is not None and dirty < last_done):
            plans.append(_Plan(coin, "full", last_done, None))
        elif last_done >= last_bar and (dirty is None or dirty > last_bar):
            if coin in done.index and int(done.loc[coin, "n"]) != int(row.n_all):
                # More bars than stored rows: a hole was filled by a writer that did not set dirty_from.
                plans.append(_Plan(coin, "full", last_done, None))
            else:
                up_to_date += 1
        else:
            start = last_done + step
            if dirty is not None and dirty <= last_done:
                start = dirty
            plans.append(_Plan(coin, "incremental", last_done, start))
    return plans, up_to_date


def _compute_batch(bars: pd.DataFrame, approx: bool) -> tuple[pd.DataFrame, dict[str, str]]:
    """Worker: indicators for a batch of coins; a coin whose bars or results are invalid fails alone."""
    try:
        return compute_indicators(bars, close_only_approx=approx), {}
    except DataValidationError:
        frames, failures = [], {}
        for coin, group in bars.groupby("coin_id", sort=False):
            try:
                frames.append(compute_indicators(group, close_only_approx=approx))
            except DataValidationError as exc:
                failures[str(coin)] = str(exc)
        return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), failures


def _chunks(items: Sequence[_Plan], size: int) -> Iterator[list[_Plan]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


@dataclass
class _Job:
    bars: pd.DataFrame
    write_from: dict[str, pd.Timestamp]  # coin -> first date written (absent: all rows)
    obv_offset: dict[str, float]  # coin -> stored OBV at the tail's first bar minus that bar's volume
    last_bar: dict[str, tuple[pd.Timestamp, pd.Timestamp]]  # coin -> (first bar, last bar)
    modes: dict[str, str]


# Calendar days read before an incremental coin's first new bar: RECOMPUTE_HISTORY_BARS daily bars and room for
# gaps. A coin whose window holds too few bars (or candle bars) is read again from its first bar.
WARMUP_DAYS = RECOMPUTE_HISTORY_BARS + RECOMPUTE_HISTORY_BARS // 2


def _read_bars(
    store: Store, coins: list[str], start: pd.Timestamp | None = None, tf: TimeframeSpec = SPECS["1d"]
) -> dict[str, pd.DataFrame]:
    if not coins:
        return {}
    bars = _read(store, tf, tf.market_table, coins, ["coin_id", *_BAR_COLUMNS], start=start)
    return dict(tuple(bars.groupby("coin_id", sort=False)))


def _prepare(
    store: Store, plans: list[_Plan], done: pd.DataFrame, stats: pd.DataFrame, tf: TimeframeSpec = SPECS["1d"]
) -> _Job:
    """Read one batch's bars and cut each incremental coin's tail (with its history) out of them.

    A full recompute reads a coin's whole history; an incremental one reads only its warm-up window
    (WARMUP_DAYS bars of the timeframe before the first bar to write), and the whole history only when that
    window is too short.
    `stats` (coverage_table, indexed by coin) gives each coin's first bar and bar count.
    """
    done_n = done.set_index("coin_id")["n"] if not done.empty else pd.Series(dtype="int64")
    incremental = [p for p in plans if p.mode == "incremental"]
    groups = _read_bars(store, [p.coin_id for p in plans if p.mode != "incremental"], tf=tf)
    if incremental:
        start = min(p.write_from for p in incremental if p.write_from is not None) - WARMUP_DAYS * tf.step
        groups |= _read_bars(store, [p.coin_id for p in incremental], start, tf)
    parts: dict[str, pd.DataFrame] = {}
    write_from, anchors, modes, spans = {}, {}, {}, {}
    reread: list[_Plan] = []

    def cut(plan: _Plan, g: pd.DataFrame) -> bool:
        """Record the coin's bars to compute; False when its window is too short (read it all, then retry)."""
        dates = g["date"].to_numpy()
        first_bar = pd.Timestamp(stats.loc[plan.coin_id, "first_date"])
        complete = pd.Timestamp(dates[0]) <= first_bar
        spans[plan.coin_id] = (first_bar, pd.Timestamp(dates[-1]))
        mode = plan.mode
        if mode == "incremental":
            # A hole filled without dirty_from: the bars up to last_done no longer match the stored rows.
            after = len(dates) - int(np.searchsorted(dates, np.datetime64(plan.last_done), side="right"))
            if int(done_n.get(plan.coin_id, -1)) != int(stats.loc[plan.coin_id, "n_all"]) - after:
                mode = "full"
        if mode == "full" and not complete:
            return False
        if mode == "incremental":
            first_new = int(np.searchsorted(dates, np.datetime64(plan.write_from), side="left"))
            candle = (g["high"].notna() & g["low"].notna()).to_numpy()
            candle_pos = np.flatnonzero(candle[:first_new])
            start = max(0, first_new - RECOMPUTE_HISTORY_BARS)
            if len(candle_pos) > RECOMPUTE_HISTORY_BARS:
                start = min(start, int(candle_pos[-RECOMPUTE_HISTORY_BARS]))
            else:
                start = 0
            if start == 0 and not complete:
                return False
            write_from[plan.coin_id] = plan.write_from
            if start > 0 or not complete:
                anchors[plan.coin_id] = (pd.Timestamp(dates[start]), float(g["volume"].iloc[start]))
            g = g.iloc[start:]
        modes[plan.coin_id] = mode
        parts[plan.coin_id] = g
        return True

    for plan in plans:
        g = groups.get(plan.coin_id)
        if g is not None and not g.empty and not cut(plan, g):
            reread.append(plan)
    if reread:
        whole = _read_bars(store, [p.coin_id for p in reread], tf=tf)
        for plan in reread:
            cut(plan, whole[plan.coin_id])
            groups[plan.coin_id] = whole[plan.coin_id]
    offsets: dict[str, float] = {}
    if anchors:
        first = min(a for a, _ in anchors.values())
        stored = _read(store, tf, tf.indicator_table, list(anchors), ["date", "obv"], start=first)
        stored = stored.set_index(["coin_id", "date"])["obv"]
        missing = []
        for coin, (day, volume) in anchors.items():
            key = (coin, day)
            if key in stored.index and pd.notna(stored.loc[key]):
                offsets[coin] = float(stored.loc[key]) - volume
            else:  # no stored OBV to continue from: recompute this coin from its first bar
                missing.append(coin)
        whole = _read_bars(store, missing, tf=tf)
        for coin in missing:
            modes[coin] = "full"
            write_from.pop(coin, None)
            parts[coin] = whole[coin]
    frame = (
        pd.concat(list(parts.values()), ignore_index=True)
        if parts
        else pd.DataFrame(columns=["coin_id", *_BAR_COLUMNS])
    )
    return _Job(frame, write_from, offsets, spans, modes)


def _read(
    store: Store, tf: TimeframeSpec, table: str, coins: list[str], columns: list[str], start: Any = None
) -> pd.DataFrame:
    """Rows with the timeframe's time column as a naive UTC `date` (what the engine and the planner use)."""
    cols = [tf.time_column if c == "date" else c for c in columns]
    if tf.time_column != "date" and start is not None:
        start = pd.Timestamp(start).tz_localize("UTC")
    frame = store.read(table, coins=coins, start=start, columns=cols)
    if tf.time_column != "date":
        frame = frame.rename(columns={tf.time_column: "date"})
        frame["date"] = _naive(frame["date"])
    return frame


def _finish(job: _Job, result: pd.DataFrame) -> pd.DataFrame:
    """Keep only the rows to write and continue OBV from its stored value."""
    if result.empty:
        return result
    if job.write_from:  # a full recompute writes every row: no filtering copy of the block
        keep = np.ones(len(result), dtype=bool)
        coin_col = result["coin_id"].to_numpy()
        for coin, start in job.write_from.items():
            keep &= ~((coin_col == coin) & (result["date"].to_numpy() < np.datetime64(start)))
        if not keep.all():
            result = result.loc[keep].reset_index(drop=True)
    if job.obv_offset:
        offset = result["coin_id"].map(job.obv_offset).fillna(0.0).to_numpy()
        result["obv"] = result["obv"].to_numpy() + offset
    return result


def compute_jobs(
    executor: Executor, jobs: Iterable[_Job], approx: bool
) -> Iterator[tuple[_Job, pd.DataFrame, dict[str, str]]]:
    """The step's compute: each job's bars through the executor's workers, and the rows to write back here.

    Yields (job, rows to write, failed coins) in the jobs' order. With the local pool the bars and the results
    travel through shared memory (docs/decisions.md#D118). The benchmark (bench/bench_indicators.py) times
    this function, so it measures what the step does short of the store.
    """
    queue: deque[_Job] = deque()

    def bars() -> Iterator[pd.DataFrame]:
        for job in jobs:
            queue.append(job)
            yield job.bars

    for result, failed in executor.map_batches(_compute_batch, bars(), approx):
        job = queue.popleft()
        yield job, _finish(job, result), failed


def _mark_state(approx: bool, tf: TimeframeSpec, last_bar: pd.Timestamp) -> str:
    state: dict[str, Any] = {"close_only_approx": approx}
    if tf.time_column != "date":
        state["last_bar"] = last_bar.isoformat()
    return json.dumps(state)


def compute_step(
    store: Store,
    settings: Settings | None = None,
    coins: Sequence[str] | None = None,
    full: bool = False,
    *,
    workers: int | None = None,
    min_coverage: float | None = None,
    close_only_approx: bool | None = None,
    batch_coins: int = BATCH_COINS,
    timeframe: str = "1d",
) -> dict[str, Any]:
    """Compute and upsert the timeframe's indicator table (`daily_technical_indicators` for 1d); return the
    step's counts (`failed`: coin -> reason). Every timeframe uses the same engine and columns
    (docs/decisions.md#D85)."""
    if settings is None:
        from kallos.settings import get_settings

        settings = get_settings()
    outcome = indicators_step(
        StepContext.direct(store, settings),
        coins=coins,
        full=full,
        workers=workers,
        min_coverage=min_coverage,
        close_only_approx=close_only_approx,
        batch_coins=batch_coins,
        timeframe=timeframe,
    )
    return outcome.counts()


def indicators_step(
    ctx: StepContext,
    *,
    coins: Sequence[str] | None = None,
    full: bool = False,
    workers: int | None = None,
    min_coverage: float | None = None,
    close_only_approx: bool | None = None,
    batch_coins: int = BATCH_COINS,
    timeframe: str = "1d",
) -> StepOutcome:
    """The indicator computation as a step (docs/decisions.md#D37); options default to the settings."""
    store, settings = ctx.store, ctx.settings
    tf = spec(timeframe)
    series = tf.series(SERIES)
    approx = settings.close_only_approx if close_only_approx is None else close_only_approx
    threshold = settings.min_coverage if min_coverage is None else min_coverage
    n_workers = workers or settings.workers or default_workers()
    started = time.monotonic()

    stats = coverage_table(store, tf)
    counts: dict[str, int] = {"coins": 0, "below_coverage": 0, "up_to_date": 0, "full": 0, "incremental": 0}
    rows_written = 0
    failures: dict[str, str] = {}
    unknown: list[str] = []

    def outcome() -> StepOutcome:
        done = counts["full"] + counts["incremental"] + counts["up_to_date"]
        return StepOutcome(
            status="partial" if failures else "success",
            coins_ok=done,
            rows_written=rows_written,
            failures=failures,
            extra={
                **counts,
                "unknown_coins": tuple(unknown),
                "close_only_approx": approx,
                "workers": n_workers,
                "timeframe": tf.name,
            },
        )

    if coins is not None:
        wanted = list(dict.fromkeys(coins))
        unknown = sorted(set(wanted) - set(stats["coin_id"]))
        stats = stats[stats["coin_id"].isin(wanted)]
    counts["coins"] = len(stats)
    eligible = stats[stats["coverage"] >= threshold]
    counts["below_coverage"] = len(stats) - len(eligible)
    if eligible.empty:
        return outcome()

    ids = list(eligible["coin_id"])
    marks = store.read("ingestion_watermarks", coins=ids)
    marks = marks[marks["series"] == series]
    done = store.query(
        f'SELECT c.coingecko_id AS coin_id, COUNT(*) AS n, MAX(t."{tf.time_column}") AS last_date '
        f"FROM {tf.indicator_table} t JOIN coins c ON c.coin_id = t.coin_id GROUP BY c.coingecko_id"
    )
    done = done[done["coin_id"].isin(ids)]
    if tf.time_column != "date":
        done["last_date"] = _naive(done["last_date"])
        eligible = eligible.assign(last_date=_naive(eligible["last_date"]))
    plans, counts["up_to_date"] = _plan(eligible, marks, done, full=full, approx=approx, step=tf.step)
    batches = list(_chunks(plans, batch_coins))
    if not batches:
        return outcome()
    by_coin = eligible.set_index("coin_id")

    def write(job: _Job, rows: pd.DataFrame, failed: dict[str, str]) -> None:
        nonlocal rows_written
        failures.update(failed)
        written_coins = [c for c in job.modes if c not in failed]
        marks_frame = pd.DataFrame(
            {
                "coin_id": written_coins,
                "series": series,
                "first_date": [job.last_bar[c][0].normalize() for c in written_coins],
                "last_date": [job.last_bar[c][1].normalize() for c in written_coins],
                "dirty_from": pd.Series([None] * len(written_coins), dtype="object"),
                "state": [_mark_state(approx, tf, job.last_bar[c][1]) for c in written_coins],
            }
        )
        out = rows if list(rows.columns) == _OUT_COLUMNS else rows[_OUT_COLUMNS]  # a selection copies the block
        if tf.time_column != "date":
            out = out.rename(columns={"date": tf.time_column})
            out[tf.time_column] = pd.to_datetime(out[tf.time_column]).dt.tz_localize("UTC")
        with store.transaction():
            if not rows.empty:
                store.upsert(tf.indicator_table, out)
            if written_coins:
                store.upsert("ingestion_watermarks", marks_frame)
        rows_written += len(rows)
        for coin in written_coins:
            counts[job.modes[coin]] += 1

    # The executor (KALLOS_EXECUTOR: local processes or Dask) computes; this process reads and writes.
    jobs = (_prepare(store, batch, done, by_coin, tf) for batch in batches)
    with get_executor(settings, workers=n_workers, preload=_PRELOAD) as executor:
        if len(batches) > 1:
            executor.start()  # the workers' process boots while the first batch is read
        ctx.progress.start("indicators", total=len(plans))
        try:
            for job, rows, failed in compute_jobs(executor, jobs, approx):
                write(job, rows, failed)
                ctx.progress.advance(len(job.modes))
        finally:
            ctx.progress.finish()

    log.info(
        "indicators computed",
        extra={
            "coins": counts["coins"],
            "full": counts["full"],
            "incremental": counts["incremental"],
            "rows": rows_written,
            "failed": len(failures),
            "duration_seconds": round(time.monotonic() - started, 3),
        },
    )
    return outcome()
