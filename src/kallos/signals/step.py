"""The signals pipeline step: stored indicators + closes -> `trading_signals`, incrementally.

Per coin, the step keeps a watermark in `ingestion_watermarks` (series `signals`): the last day it computed
and, in `state`, the config hash it used and the newest `updated_at` it saw on the coin's inputs (so the row
changes, and the database stamps its `updated_at`, whenever new inputs were consumed). A run recomputes from
the earliest of: the day after the last computed one, and the first day whose indicator or market row has an
`updated_at` later than the watermark's (a filled hole, a late candle, a recomputed indicator history). It
reads enough earlier rows for the longest rule window, deletes the coin's signal rows from that day on (a rule
that no longer fires must not stay) and inserts the new ones, in one transaction per batch of coins. A
different config hash, `full=True`, or no watermark means a full recompute that replaces all of the coin's
rows (docs/decisions.md#D17).

Timestamps compared here are all the database's own `updated_at` values, never the (possibly pinned) clock.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from kallos.errors import DataValidationError
from kallos.indicators.contract import COMPOSITE_COLUMNS, INDICATOR_COLUMNS
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.scale.executor import LocalExecutor, get_executor
from kallos.signals.config import SignalConfig, load_signal_config
from kallos.signals.engine import generate_signals
from kallos.signals.evaluation import evaluate_signals, parse_horizons
from kallos.signals.rules import FLAT_WINDOWS
from kallos.signals.universe import excluded_signal_coins
from kallos.timeframes import SPECS, TimeframeSpec, spec

log = get_logger(__name__)

SERIES = "signals"
DAILY = SPECS["1d"]
HISTORY_ROWS = max(FLAT_WINDOWS.values()) + 1
"""Stored rows read before the first recomputed day: the longest flat-price window, plus the previous row."""
BATCH_COINS = 200
_INDICATOR_SET = set(INDICATOR_COLUMNS) | set(COMPOSITE_COLUMNS)


def resolve_config(settings: Any = None, path: Any = None) -> SignalConfig:
    """`--config FILE` first, then `KALLOS_SIGNAL_CONFIG`, then the package default."""
    if path is None and settings is not None:
        path = getattr(settings, "signal_config", None)
    return load_signal_config(path)


def _in_list(coins: Sequence[str], prefix: str = "k") -> tuple[str, dict[str, Any]]:
    names = [f"{prefix}{i}" for i in range(len(coins))]
    return ", ".join(f":{n}" for n in names), dict(zip(names, coins, strict=True))


def _coin_filter(coins: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    if coins is None:
        return "", {}
    placeholders, params = _in_list(list(coins))
    return f" AND c.coingecko_id IN ({placeholders})", params


def _watermarks(store: Any, coins: Sequence[str] | None, tf: TimeframeSpec = DAILY) -> dict[str, dict[str, Any]]:
    cond, params = _coin_filter(coins)
    frame = store.query(
        "SELECT c.coingecko_id AS coin_id, w.last_date, w.state FROM ingestion_watermarks w "
        f"JOIN coins c ON c.coin_id = w.coin_id WHERE w.series = :series{cond}",
        {"series": tf.series(SERIES), **params},
    )
    out = {}
    for row in frame.itertuples(index=False):
        try:
            state = json.loads(row.state) if isinstance(row.state, str) else {}
        except json.JSONDecodeError:
            state = {}
        out[row.coin_id] = {"last_date": row.last_date, **state}
        if state.get("last_bar"):  # hourly: the watermark's DATE cannot hold the hour
            out[row.coin_id]["last_date"] = pd.Timestamp(state["last_bar"])
    return out


def _indicator_coins(store: Any, coins: Sequence[str] | None, tf: TimeframeSpec = DAILY) -> pd.DataFrame:
    """Coins with stored indicators: their first and last day and the newest write to their inputs."""
    cond, params = _coin_filter(coins)
    t = f'"{tf.time_column}"'
    ind = store.query(
        f"SELECT c.coingecko_id AS coin_id, MIN(t.{t}) AS first_date, MAX(t.{t}) AS last_date, "
        f"MAX(t.updated_at) AS ind_seen FROM {tf.indicator_table} t "
        "JOIN coins c ON c.coin_id = t.coin_id "
        f"WHERE 1 = 1{cond} GROUP BY c.coingecko_id",
        params,
    )
    mkt = store.query(
        f"SELECT c.coingecko_id AS coin_id, MAX(t.updated_at) AS mkt_seen FROM {tf.market_table} t "
        f"JOIN coins c ON c.coin_id = t.coin_id WHERE 1 = 1{cond} GROUP BY c.coingecko_id",
        params,
    )
    if ind.empty:
        return ind
    for col in ("first_date", "last_date"):
        ind[col] = _naive(ind[col])
    out = ind.merge(mkt, on="coin_id", how="left")
    out["seen"] = out[["ind_seen", "mkt_seen"]].max(axis=1)
    return out.set_index("coin_id")


def _naive(s: pd.Series) -> pd.Series:
    """UTC instants as naive datetimes (hourly stamps compare with the planner's days on one scale)."""
    s = pd.to_datetime(s)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def _changed_since(store: Any, coins: list[str], tf: TimeframeSpec = DAILY) -> dict[str, pd.Timestamp]:
    """Per coin, the earliest day whose indicators or close were written after its signals watermark.

    The watermark row is rewritten (its `updated_at` set by the database) in the transaction that stores the
    signals, after their inputs were read: a later `updated_at` on an input row is a change not yet seen.
    """
    if not coins:
        return {}
    wanted = set(coins)
    found: dict[str, pd.Timestamp] = {}
    for table in (tf.indicator_table, tf.market_table):
        frame = store.query(
            f'SELECT c.coingecko_id AS coin_id, MIN(t."{tf.time_column}") AS dirty_from FROM {table} t '
            "JOIN ingestion_watermarks w ON w.coin_id = t.coin_id AND w.series = :series "
            "JOIN coins c ON c.coin_id = t.coin_id "
            "WHERE t.updated_at > w.updated_at GROUP BY c.coingecko_id",
            {"series": tf.series(SERIES)},
        )
        for coin, day in zip(frame["coin_id"], _naive(frame["dirty_from"]), strict=True):
            if coin in wanted:
                found[coin] = min(found.get(coin, pd.Timestamp(day)), pd.Timestamp(day))
    return found


def _history_start(store: Any, coin: str, start: pd.Timestamp, tf: TimeframeSpec = DAILY) -> pd.Timestamp:
    """The date HISTORY_ROWS stored indicator rows before `start` (or the coin's first row)."""
    t = f'"{tf.time_column}"'
    bound = start.date() if tf.time_column == "date" else start.tz_localize("UTC").to_pydatetime()
    frame = store.query(
        f"SELECT t.{t} AS date FROM {tf.indicator_table} t JOIN coins c ON c.coin_id = t.coin_id "
        f"WHERE c.coingecko_id = :coin AND t.{t} < :start ORDER BY t.{t} DESC LIMIT :n",
        {"coin": coin, "start": bound, "n": HISTORY_ROWS},
    )
    return start if frame.empty else pd.Timestamp(_naive(frame["date"]).min())


def read_signal_inputs(
    store: Any,
    coins: Sequence[str],
    start: pd.Timestamp | None = None,
    config: SignalConfig | None = None,
    tf: TimeframeSpec = DAILY,
) -> pd.DataFrame:
    """Indicator rows joined with the close of the same bar (the frame `generate_signals` takes)."""
    from kallos.signals.rules import required_columns

    cols = [c for c in required_columns(config or SignalConfig()) if c in _INDICATOR_SET]
    ind = _read(store, tf, tf.indicator_table, coins, start, cols)
    close = _read(store, tf, tf.market_table, coins, start, ["close"])
    frame = ind.merge(close, on=["coin_id", "date"], how="inner")
    lost = len(ind) - len(frame)
    if lost:
        log.warning("indicator rows without a stored close are skipped", extra={"rows": lost})
    return frame


def _read(store: Any, tf: TimeframeSpec, table: str, coins: Sequence[str], start: Any, cols: list[str]) -> pd.DataFrame:
    if tf.time_column == "date":
        return store.read(table, coins=list(coins), start=start, columns=["date", *cols])
    if start is not None:
        start = pd.Timestamp(start).tz_localize("UTC")
    frame = store.read(table, coins=list(coins), start=start, columns=[tf.time_column, *cols])
    frame = frame.rename(columns={tf.time_column: "date"})
    frame["date"] = _naive(frame["date"])
    return frame


def _plan(
    store: Any, coins: Sequence[str] | None, config_hash: str, full: bool, tf: TimeframeSpec = DAILY
) -> tuple[pd.DataFrame, dict[str, pd.Timestamp | None], int]:
    """Which coins need work, and from which day (None = all of it)."""
    info = _indicator_coins(store, coins, tf)
    if info.empty:
        return info, {}, 0
    marks = {} if full else _watermarks(store, list(info.index), tf)
    plan: dict[str, pd.Timestamp | None] = {}
    incremental: list[str] = []
    for coin in info.index:
        wm = marks.get(coin)
        if full or not wm or wm.get("config_hash") != config_hash or not wm.get("seen") or pd.isna(wm["last_date"]):
            plan[coin] = None
            continue
        incremental.append(coin)
        plan[coin] = pd.Timestamp(wm["last_date"]) + tf.step
    for coin, day in _changed_since(store, incremental, tf).items():
        current = plan[coin]
        plan[coin] = min(current, pd.Timestamp(day)) if current is not None else None
    up_to_date = 0
    for coin, start in list(plan.items()):
        if start is not None and start > pd.Timestamp(info.loc[coin, "last_date"]):
            del plan[coin]
            up_to_date += 1
    return info, plan, up_to_date


def generate_step(
    store: Any,
    settings: Any = None,
    coins: Sequence[str] | None = None,
    full: bool = False,
    *,
    config: SignalConfig | None = None,
    config_path: Any = None,
    run_id: str | None = None,
    timeframe: str = "1d",
) -> dict[str, Any]:
    """Bring the timeframe's signal table (`trading_signals` for 1d) up to date with its stored indicators;
    return the step's counts. Each timeframe has its own config section (docs/decisions.md#D86)."""
    # settings=None stays allowed here: the package's default config, computed in this process.
    ctx = StepContext.direct(store, settings, run_id=run_id or "")
    return signals_step(
        ctx, coins=coins, full=full, config=config, config_path=config_path, timeframe=timeframe
    ).counts()


def signals_step(
    ctx: StepContext,
    *,
    coins: Sequence[str] | None = None,
    full: bool = False,
    config: SignalConfig | None = None,
    config_path: Any = None,
    timeframe: str = "1d",
) -> StepOutcome:
    """Signal generation as a step (docs/decisions.md#D37); rows are stamped with the context's run id."""
    store, settings, run_id = ctx.store, ctx.settings, ctx.run_id or None
    t0 = time.monotonic()
    tf = spec(timeframe)
    config = (config or resolve_config(settings, config_path)).for_timeframe(tf.name)
    chash = config.config_hash()
    info, plan, up_to_date = _plan(store, coins, chash, full, tf)
    excluded = excluded_signal_coins(store, settings) & set(plan)  # docs/decisions.md#D66
    plan = {c: start for c, start in plan.items() if c not in excluded}
    counts: dict[str, Any] = {
        "coins": 0,
        "full": 0,
        "incremental": 0,
        "up_to_date": up_to_date,
        "rule_rows": 0,
        "composite_rows": 0,
        "deleted": 0,
        "config_hash": chash,
        "excluded": len(excluded),
        "timeframe": tf.name,
    }
    if coins is not None:
        counts["no_indicators"] = len(set(coins) - set(info.index)) if not info.empty else len(set(coins))
    todo = sorted(plan)
    if todo:
        # Reads and writes stay here (docs/decisions.md#D13); generate_signals runs on the executor, in order.
        read: deque[tuple[list[str], pd.DataFrame]] = deque()

        def inputs_of_batches() -> Iterator[pd.DataFrame]:
            for i in range(0, len(todo), BATCH_COINS):
                batch = todo[i : i + BATCH_COINS]
                inputs = _read_batch(store, batch, plan, config, tf)
                if not inputs.empty:
                    read.append((batch, inputs))
                    yield inputs

        ctx.progress.start("signals", total=len(todo))
        try:
            with _executor(settings) as executor:
                for signals in executor.map_batches(generate_signals, inputs_of_batches(), config):
                    batch, inputs = read.popleft()
                    _write_batch(store, batch, plan, info, inputs, signals, chash, run_id, counts, tf)
                    ctx.progress.advance(len(batch))
        finally:
            ctx.progress.finish()
    log.info(
        "signals generated",
        extra={
            **{k: v for k, v in counts.items() if k != "config_hash"},
            "duration_seconds": round(time.monotonic() - t0, 3),
        },
    )
    return StepOutcome(
        coins_ok=counts["coins"] + counts["up_to_date"],
        rows_written=counts["rule_rows"] + counts["composite_rows"],
        extra=counts,
    )


def _executor(settings: Any) -> Any:
    """`KALLOS_EXECUTOR=dask` sends the compute to Dask; locally it stays in this process (it is cheap)."""
    if getattr(settings, "executor", "local") == "dask":
        return get_executor(settings)
    return LocalExecutor(1)


def _read_batch(
    store: Any,
    batch: list[str],
    plan: dict[str, pd.Timestamp | None],
    config: SignalConfig,
    tf: TimeframeSpec = DAILY,
) -> pd.DataFrame:
    full_coins = [c for c in batch if plan[c] is None]
    inc_coins = [c for c in batch if plan[c] is not None]
    read_from: dict[str, pd.Timestamp] = {c: _history_start(store, c, plan[c], tf) for c in inc_coins}  # type: ignore[arg-type]
    frames = []
    if full_coins:
        frames.append(read_signal_inputs(store, full_coins, None, config, tf))
    if inc_coins:
        frame = read_signal_inputs(store, inc_coins, min(read_from.values()), config, tf)
        frames.append(frame.loc[frame["date"] >= frame["coin_id"].map(read_from)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _write_batch(
    store: Any,
    batch: list[str],
    plan: dict[str, pd.Timestamp | None],
    info: pd.DataFrame,
    inputs: pd.DataFrame,
    signals: pd.DataFrame,
    chash: str,
    run_id: str | None,
    counts: dict[str, Any],
    tf: TimeframeSpec = DAILY,
) -> None:
    full_coins = [c for c in batch if plan[c] is None]
    inc_coins = [c for c in batch if plan[c] is not None]
    if inc_coins:
        starts = signals["coin_id"].map({c: plan[c] for c in inc_coins})
        signals = signals.loc[starts.isna() | (signals["date"] >= starts)]
    if run_id is not None:
        signals = signals.assign(run_id=run_id)
    marks = _watermark_rows(batch, plan, info, inputs, chash, tf)
    table, t = tf.signal_table, f'"{tf.time_column}"'
    if tf.time_column != "date":
        signals = signals.rename(columns={"date": tf.time_column})
        signals[tf.time_column] = pd.to_datetime(signals[tf.time_column]).dt.tz_localize("UTC")
    with store.transaction():
        if full_coins:
            placeholders, params = _in_list(full_coins)
            counts["deleted"] += _deleted(
                store.execute(
                    f"DELETE FROM {table} WHERE coin_id IN "
                    f"(SELECT coin_id FROM coins WHERE coingecko_id IN ({placeholders}))",
                    params,
                )
            )
        for coin in inc_coins:
            counts["deleted"] += _deleted(
                store.execute(
                    f"DELETE FROM {table} WHERE {t} >= :start AND coin_id = "
                    "(SELECT coin_id FROM coins WHERE coingecko_id = :coin)",
                    {"start": _bound(plan[coin], tf), "coin": coin},  # type: ignore[arg-type]
                )
            )
        if not signals.empty:
            store.upsert(table, signals)
        store.upsert("ingestion_watermarks", marks)
    composite = int((signals["signal"] == "composite").sum())
    counts["composite_rows"] += composite
    counts["rule_rows"] += len(signals) - composite
    counts["coins"] += len(batch)
    counts["full"] += len(full_coins)
    counts["incremental"] += len(inc_coins)


def _bound(start: pd.Timestamp, tf: TimeframeSpec) -> Any:
    return start.date() if tf.time_column == "date" else start.tz_localize("UTC").to_pydatetime()


def _deleted(n: Any) -> int:
    return int(n) if isinstance(n, int) and n > 0 else 0


def _watermark_rows(
    batch: list[str],
    plan: dict[str, pd.Timestamp | None],
    info: pd.DataFrame,
    inputs: pd.DataFrame,
    chash: str,
    tf: TimeframeSpec = DAILY,
) -> pd.DataFrame:
    last = inputs.groupby("coin_id")["date"].max()
    rows = []
    for coin in batch:
        seen = info.loc[coin, "seen"]
        last_bar = pd.Timestamp(last.get(coin, info.loc[coin, "last_date"]))
        state = {"config_hash": chash, "seen": None if pd.isna(seen) else pd.Timestamp(seen).isoformat()}
        if tf.time_column != "date":
            state["last_bar"] = last_bar.isoformat()
        rows.append(
            {
                "coin_id": coin,
                "series": tf.series(SERIES),
                "first_date": pd.Timestamp(info.loc[coin, "first_date"]).normalize(),
                "last_date": last_bar.normalize(),
                "state": json.dumps(state),
            }
        )
    return pd.DataFrame(rows)


def evaluate_step(
    store: Any,
    horizons: Sequence[int] | str = (1, 7, 30),
    coins: Sequence[str] | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    settings: Any = None,
) -> pd.DataFrame:
    """Read stored signals and the closes they need; return the evaluation report frame. Coins outside the
    signals universe (``settings``' rules, else the default ones: docs/decisions.md#D66) are left out."""
    hs = parse_horizons(horizons)
    signals = store.read(
        "trading_signals",
        coins=coins,
        start=start,
        end=end,
        columns=["date", "signal", "direction", "action", "config_hash"],
    )
    signals = signals.loc[~signals["coin_id"].isin(excluded_signal_coins(store, settings))]
    if signals.empty:
        raise DataValidationError(
            "no stored signals to evaluate (run `kallos signals generate` first)",
            coins=list(coins) if coins else None,
            start=str(start) if start else None,
            end=str(end) if end else None,
        )
    lo = signals["date"].min()
    hi = signals["date"].max() + pd.Timedelta(days=max(hs))
    closes = store.read(
        "daily_market_data",
        coins=sorted(signals["coin_id"].unique()),
        start=lo,
        end=hi,
        columns=["date", "close"],
    )
    return evaluate_signals(signals, closes, hs, start=start, end=end)
