"""What each dashboard page shows, read from the store: plain dicts and lists (the JSON endpoints' bodies).

One function per page, each a handful of set-based queries, so a page costs milliseconds on the demo store
(bench/bench_dashboard.py). Request parameters arrive validated by the app (kallos.web.params); a coin or run
the store does not know raises NotFound, which the app turns into a 404 page.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kallos.errors import KallosError
from kallos.log import get_logger
from kallos.pipeline import schedule
from kallos.pipeline.ledger import RUNS, STEPS, last_success
from kallos.pipeline.status import counts_of, coverage, freshness
from kallos.pipeline.telemetry import complete, of_counts
from kallos.store import Store
from kallos.store.schema import INDICATOR_COLUMNS, TABLES

log = get_logger(__name__)

DEFAULT_INDICATORS = ("sma_20", "sma_50", "rsi_14")
MAX_EVENT_ROWS = 200
RUN_HISTORY = 60


class NotFound(KallosError):
    """A coin, run or table the store does not have (HTTP 404)."""


# ---- JSON-ready values ---------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Numbers, strings, ISO dates and None only: what json.dumps and the templates both take."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return None
        return value.date().isoformat() if value == value.normalize() and value.tzinfo is None else value.isoformat()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready rows, converted a column at a time (the level history has thousands of rows)."""
    cols: dict[str, pd.Series] = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            present = col.dropna()
            if col.dt.tz is None and (present == present.dt.normalize()).all():
                text = col.dt.strftime("%Y-%m-%d")
            else:
                text = col.map(plain)
            cols[str(name)] = text.astype(object).where(col.notna(), None)
        elif pd.api.types.is_float_dtype(col):
            values = col.to_numpy(dtype=np.float64)
            cols[str(name)] = col.astype(object).where(np.isfinite(values), None)
        elif pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
            cols[str(name)] = col.astype(object)
        else:
            cols[str(name)] = col.map(plain).astype(object).where(col.notna(), None)
    if not cols:
        return [{} for _ in range(len(frame))]
    return pd.DataFrame(cols, index=frame.index).to_dict(orient="records")


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _seconds(start: Any, end: Any) -> float | None:
    a, b = _ts(start), _ts(end)
    return round((b - a).total_seconds(), 3) if a is not None and b is not None else None


def has_table(store: Store, name: str) -> bool:
    """Tables other issues add (hourly data, benchmarks, latest prices) are shown only where they exist."""
    return bool(
        store.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = :t AND table_schema = current_schema()",
            {"t": name},
        )
    )


def schema_ready(store: Store) -> bool:
    """False for an empty database: `kallos db init` (or a first run) has not created the tables yet."""
    return has_table(store, "schema_migrations") and has_table(store, RUNS)


def coin_exists(store: Store, coin: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM coins WHERE coingecko_id = :c", {"c": coin}))


# ---- overview -----------------------------------------------------------------------------------------------
def _run_row(r: Any) -> dict[str, Any]:
    counts = counts_of(r.counts)
    tele = dict(counts.get("telemetry") or {})
    if not tele:  # runs recorded before telemetry: what the summary had
        tele = {
            "requests": counts.get("api_calls", 0),
            "credits": counts.get("api_credits", 0),
            "rows_written": counts.get("rows_written", 0),
            "rows_quarantined": counts.get("rows_quarantined", 0),
        }
    return {
        "run_id": r.run_id,
        "command": r.command,
        "started_at": plain(_ts(r.started_at)),
        "finished_at": plain(_ts(r.finished_at)),
        "status": r.status,
        # The measured duration: the ledger's timestamps follow the run's clock, which `--now` pins.
        "duration_seconds": measured
        if isinstance(measured := counts.get("duration_seconds"), (int, float))
        else _seconds(r.started_at, r.finished_at),
        "telemetry": complete(tele),
        "steps": counts.get("steps", {}),
        "error": r.error if isinstance(r.error, str) else None,
    }


def last_runs(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    runs = store.query(
        f"SELECT run_id, command, started_at, finished_at, status, counts, error FROM {RUNS} "
        "ORDER BY started_at DESC LIMIT :n",
        {"n": int(limit)},
    )
    return [_run_row(r) for r in runs.itertuples(index=False)]


def due_next(store: Store, today: dt.date) -> list[dict[str, Any]]:
    """What the next `kallos run` will do, by the same schedule rules the run applies (decisions D-schedule)."""
    has_coins = bool(store.scalar("SELECT count(*) FROM coins"))
    u_due, u_why = schedule.universe_due(today, last_success(store, "universe"), has_coins=has_coins)
    last_data = store.scalar('SELECT max("date") FROM daily_market_data')
    last_index = store.scalar('SELECT max("date") FROM daily_index_values')
    i_due, i_why = schedule.index_due(
        pd.Timestamp(last_data).date() if last_data is not None else None,
        pd.Timestamp(last_index).date() if last_index is not None else None,
    )
    tracked = int(store.scalar("SELECT count(DISTINCT coin_id) FROM daily_market_data") or 0)
    market_why = (
        f"every run: {tracked:,} tracked coins, newest day {pd.Timestamp(last_data).date().isoformat()}"
        if tracked and last_data is not None
        else "no coins tracked yet: start with `kallos market backfill --top N`"
    )
    return [
        {"step": "universe", "due": u_due, "reason": u_why},
        {"step": "details", "due": True, "reason": "every run: coins whose details are older than 30 days"},
        {"step": "market", "due": bool(tracked), "reason": market_why},
        {"step": "indicators", "due": bool(tracked), "reason": "after market data: changed coins only"},
        {"step": "signals", "due": bool(tracked), "reason": "after indicators: changed coins only"},
        {"step": "index", "due": i_due, "reason": i_why},
    ]


def coin_lag(store: Store, today: dt.date, limit: int = 15) -> dict[str, Any]:
    """Per coin, days between its newest stored close and today: the distribution and the worst coins."""
    frame = store.query(
        'SELECT c.coingecko_id AS coin_id, max(d."date") AS last_date FROM daily_market_data d '
        "JOIN coins c ON c.coin_id = d.coin_id GROUP BY c.coingecko_id"
    )
    if frame.empty:
        return {"coins": 0, "buckets": [], "worst": []}
    last = pd.to_datetime(frame["last_date"])
    lag = (pd.Timestamp(today) - last).dt.days
    frame = frame.assign(lag_days=lag.astype(int)).sort_values(["lag_days", "coin_id"], ascending=[False, True])
    edges = [
        (None, 1, "≤ 1 day"),
        (2, 3, "2–3 days"),
        (4, 7, "4–7 days"),
        (8, 30, "8–30 days"),
        (31, None, "> 30 days"),
    ]
    days = frame["lag_days"]
    buckets = []
    for lo, hi, label in edges:
        mask = (days >= (lo if lo is not None else days.min())) & (days <= (hi if hi is not None else days.max()))
        buckets.append({"label": label, "coins": int(mask.sum())})
    return {"coins": len(frame), "buckets": buckets, "worst": records(frame.head(limit))}


def overview(store: Store, *, today: dt.date, min_coverage: float) -> dict[str, Any]:
    runs = last_runs(store, 10)
    fresh = freshness(store, today)
    cov = coverage(store, min_coverage)
    return {
        "empty": not runs,
        "runs": runs,
        "due": due_next(store, today),
        "freshness": records(fresh),
        "lag": coin_lag(store, today),
        "coverage": plain(cov),
        "streaming": streaming(store),
    }


def streaming(store: Store) -> dict[str, Any] | None:
    """The WebSocket stream's `latest_prices`, where that table exists: coins and the newest update."""
    if not has_table(store, "latest_prices"):
        return None
    row = store.query("SELECT count(*) AS coins, max(ts) AS newest FROM latest_prices").iloc[0]
    return {"coins": int(row["coins"]), "newest": plain(_ts(row["newest"]))}


# ---- runs ---------------------------------------------------------------------------------------------------
def runs_page(store: Store, *, limit: int = RUN_HISTORY) -> dict[str, Any]:
    steps = store.query(
        f"SELECT s.run_id, s.step, s.started_at, s.finished_at, s.status, s.counts, s.error FROM {STEPS} s "
        f"JOIN (SELECT run_id FROM {RUNS} ORDER BY started_at DESC LIMIT :n) r ON r.run_id = s.run_id "
        "ORDER BY s.started_at",
        {"n": int(limit)},
    )
    durations: dict[str, list[dict[str, Any]]] = {}
    failures = []
    for s in steps.itertuples(index=False):
        counts = counts_of(s.counts)
        secs = counts.get("duration_seconds")
        if not isinstance(secs, (int, float)):
            secs = _seconds(s.started_at, s.finished_at)
        if s.status != "skipped" and secs is not None:
            durations.setdefault(s.step, []).append({"at": plain(_ts(s.started_at)), "seconds": float(secs)})
        if s.status in ("failed", "partial"):
            failures.append(
                {
                    "run_id": s.run_id,
                    "step": s.step,
                    "status": s.status,
                    "started_at": plain(_ts(s.started_at)),
                    "error": s.error if isinstance(s.error, str) else None,
                }
            )
    failures.reverse()
    return {"runs": last_runs(store, limit), "durations": durations, "failures": failures[:50]}


def run_detail(store: Store, run_id: str) -> dict[str, Any]:
    runs = store.query(
        f"SELECT run_id, command, started_at, finished_at, status, counts, error FROM {RUNS} WHERE run_id = :r",
        {"r": run_id},
    )
    if runs.empty:
        raise NotFound(f"no run {run_id!r} in the ledger", run_id=run_id)
    steps = store.query(
        f"SELECT step, started_at, finished_at, status, counts, error FROM {STEPS} WHERE run_id = :r "
        "ORDER BY started_at",
        {"r": run_id},
    )
    out = []
    for s in steps.itertuples(index=False):
        counts = counts_of(s.counts)
        tele = of_counts(counts) or {k: int(counts.get(k) or 0) for k in ("rows_written", "rows_quarantined")}
        out.append(
            {
                "step": s.step,
                "status": s.status,
                "started_at": plain(_ts(s.started_at)),
                "duration_seconds": counts.get("duration_seconds", _seconds(s.started_at, s.finished_at)),
                "telemetry": complete(tele),
                "reason": counts.get("reason"),
                "error": s.error if isinstance(s.error, str) else None,
            }
        )
    return {"run": _run_row(next(runs.itertuples(index=False))), "steps": out}


# ---- data quality -------------------------------------------------------------------------------------------
def quality(store: Store, *, coin: str | None = None, reason: str | None = None) -> dict[str, Any]:
    where, params = [], {}
    if coin is not None:
        if not coin_exists(store, coin):
            raise NotFound(f"unknown coin {coin!r}", coin=coin)
        where.append("c.coingecko_id = :coin")
        params["coin"] = coin
    if reason is not None:
        where.append("e.reason = :reason")
        params["reason"] = reason
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    src = "data_quality_events e JOIN coins c ON c.coin_id = e.coin_id"
    by_month = store.query(
        f"SELECT date_trunc('month', e.\"date\") AS month, e.reason, count(*) AS n FROM {src}{cond} "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    by_reason = store.query(
        f'SELECT e.reason, e.action, count(*) AS n, count(DISTINCT e.coin_id) AS coins, min(e."date") AS first_date, '
        f'max(e."date") AS last_date FROM {src}{cond} GROUP BY 1, 2 ORDER BY n DESC, 1',
        params,
    )
    by_coin = store.query(
        f"SELECT c.coingecko_id AS coin_id, count(*) AS n, count(DISTINCT e.reason) AS reasons FROM {src}{cond} "
        "GROUP BY 1 ORDER BY n DESC, 1 LIMIT 25",
        params,
    )
    rows = store.query(
        f'SELECT c.coingecko_id AS coin_id, e."date", e.source, e.field, e.reason, e.action, e.raw, e.detail, '
        f'e.run_id FROM {src}{cond} ORDER BY e."date" DESC, c.coingecko_id, e.field LIMIT {MAX_EVENT_ROWS}',
        params,
    )
    if reason is not None and by_reason.empty and not coin:
        known = store.scalar("SELECT count(*) FROM data_quality_events WHERE reason = :r", {"r": reason})
        if not known:
            raise NotFound(f"no quality events with reason {reason!r}", reason=reason)
    series: dict[str, list[dict[str, Any]]] = {}
    for r in by_month.itertuples(index=False):
        series.setdefault(r.reason, []).append({"month": plain(pd.Timestamp(r.month).date()), "events": int(r.n)})
    return {
        "filter": {"coin": coin, "reason": reason},
        "total": int(by_reason["n"].sum()) if len(by_reason) else 0,
        "over_time": series,
        "by_reason": records(by_reason),
        "by_coin": records(by_coin),
        "rows": records(rows),
        "rows_limit": MAX_EVENT_ROWS,
    }


# ---- market -------------------------------------------------------------------------------------------------
TIMEFRAME_TABLES = {"daily": "daily_market_data", "hourly": "hourly_market_data", "weekly": "weekly_market_data"}
"""Timeframes and their tables; those other than daily are shown where their table exists."""


def timeframes(store: Store) -> list[str]:
    return [
        tf for tf, table in TIMEFRAME_TABLES.items() if tf == "daily" or (table in TABLES and has_table(store, table))
    ]


def market_list(store: Store) -> dict[str, Any]:
    live = has_table(store, "latest_prices")
    extra = ", p.price AS live_price, p.ts AS live_ts" if live else ""
    join = " LEFT JOIN latest_prices p ON p.coin_id = l.coin_id" if live else ""
    frame = store.query(
        f'SELECT l.coingecko_id AS coin_id, l.symbol, l."date", l.close, l.volume, l.market_cap, c.name{extra} '
        f"FROM latest_market_data l JOIN coins c ON c.coin_id = l.coin_id{join} "
        "ORDER BY l.market_cap DESC NULLS LAST, l.coingecko_id LIMIT 500"
    )
    return {"coins": records(frame), "live": live}


def market_coin(
    store: Store,
    coin: str,
    *,
    timeframe: str = "daily",
    start: dt.date | None = None,
    end: dt.date | None = None,
    indicators: Sequence[str] = DEFAULT_INDICATORS,
) -> dict[str, Any]:
    if not coin_exists(store, coin):
        raise NotFound(f"unknown coin {coin!r}", coin=coin)
    available = timeframes(store)
    if timeframe not in available:
        raise NotFound(f"no {timeframe} data in this store (timeframes: {', '.join(available)})", timeframe=timeframe)
    name = store.query("SELECT name, symbol FROM coins WHERE coingecko_id = :c", {"c": coin}).iloc[0]
    bars_table = TIMEFRAME_TABLES[timeframe]
    time_col = TABLES[bars_table].date_column or "date"
    if start is None and end is None:
        start = _default_start(store, coin, bars_table, time_col, DEFAULT_WINDOW[timeframe])
    prices = [
        c for c in ("open", "high", "low", "close", "volume", "market_cap") if c in TABLES[bars_table].column_names
    ]
    bars = store.read(bars_table, coins=[coin], start=start, end=end, columns=[time_col, *prices])
    ind_table = bars_table.replace("_market_data", "_technical_indicators")
    chosen = [c for c in indicators if c in INDICATOR_COLUMNS] if ind_table in TABLES else []
    frame = bars.drop(columns="coin_id")
    if chosen and has_table(store, ind_table):
        ind = store.read(ind_table, coins=[coin], start=start, end=end, columns=[time_col, *chosen])
        frame = frame.merge(ind.drop(columns="coin_id"), on=time_col, how="left")
    return {
        "coin": coin,
        "name": str(name["name"]),
        "symbol": str(name["symbol"]),
        "timeframe": timeframe,
        "timeframes": available,
        "indicators": chosen,
        "indicator_choices": list(INDICATOR_COLUMNS),
        "start": plain(start),
        "end": plain(end),
        "bars": records(frame.rename(columns={time_col: "date"})),
    }


DEFAULT_WINDOW = {"daily": dt.timedelta(days=365), "hourly": dt.timedelta(days=14), "weekly": dt.timedelta(days=1825)}
"""What a market chart shows without dates: a window a person can read, and a fast page."""


def _default_start(store: Store, coin: str, table: str, time_col: str, window: dt.timedelta) -> dt.date | None:
    last = store.scalar(
        f'SELECT max(t."{time_col}") FROM {table} t JOIN coins c ON c.coin_id = t.coin_id WHERE c.coingecko_id = :c',
        {"c": coin},
    )
    return (pd.Timestamp(last) - window).date() if last is not None else None


# ---- index --------------------------------------------------------------------------------------------------
def index_names(store: Store) -> list[str]:
    """The named indices stored, where the index tables carry `index_name` (empty: one unnamed index)."""
    if "index_name" not in TABLES["daily_index_values"].column_names:
        return []
    return [str(n) for n in store.query("SELECT DISTINCT index_name FROM daily_index_values ORDER BY 1")["index_name"]]


def index_page(store: Store, name: str | None = None, settings: Any = None) -> dict[str, Any]:
    from kallos.index.metrics import compute_metrics, drawdown_series

    names = index_names(store)
    if name is not None and name not in names:
        raise NotFound(f"no index named {name!r} in this store", index=name)
    chosen = name or (names[0] if names else None)
    where, params = ("WHERE index_name = :n", {"n": chosen}) if chosen is not None else ("", {})
    k_where = "AND k.index_name = :n" if chosen is not None else ""
    values = store.query(
        f'SELECT "date", index_value, daily_return, net_index_value FROM daily_index_values {where} ORDER BY "date"',
        params,
    )
    empty: dict[str, Any] = {"empty": True, "name": chosen, "names": names, "levels": [], "constituents": [],
             "metrics": {},
             "turnover": [], "benchmarks": {}}  # fmt: skip
    if values.empty:
        return empty
    values = values.assign(drawdown=drawdown_series(values["index_value"]))
    turnover = store.query(
        f"SELECT selection_date, turnover FROM index_turnover {where} ORDER BY selection_date", params
    )
    latest = store.query(
        'SELECT k.year, k.month, c.coingecko_id AS coin_id, c.symbol, k.selection_date, k."rank", k.market_cap, '
        "k.weight FROM index_monthly_constituents k JOIN coins c ON c.coin_id = k.coin_id "
        f"WHERE (k.year * 100 + k.month) = (SELECT max(year * 100 + month) FROM index_monthly_constituents k "
        f'WHERE true {k_where}) {k_where} ORDER BY k."rank"',
        params,
    )
    return {
        **empty,
        "empty": False,
        "levels": records(values),
        "metrics": plain(compute_metrics(values, turnover)),
        "constituents": records(latest),
        "turnover": records(turnover),
        "benchmarks": {
            **index_benchmarks(store, settings, chosen, values),
            **{f"index {n}": _levels(store, n) for n in names if n != chosen},
        },
    }


def index_benchmarks(store: Store, settings: Any, name: str | None, values: pd.DataFrame) -> dict[str, Any]:
    """The index's benchmarks (bitcoin, equal weight, uncapped) by the functions `kallos index report` uses,
    from the same base date and level; cached until the market data or the index change (D96)."""
    try:
        from kallos.index.benchmarks import benchmark_values
        from kallos.index.step import definitions, read_exclusions, read_market
    except ImportError:  # a Kallos without benchmarks
        return {}
    if settings is None or name is None:
        return {}
    base, through = pd.Timestamp(values["date"].min()).date(), pd.Timestamp(values["date"].max()).date()

    def compute() -> dict[str, Any]:
        definition = definitions(store, settings, [name])[0]
        series = benchmark_values(
            read_market(store),
            exclude=read_exclusions(store, definition.excluded_categories),
            base_date=base,
            end=through,
            build_kwargs=definition.build_kwargs(),
            base_level=float(values["index_value"].iloc[0]),
        )
        return {
            k: records(v[["date", "index_value"]].rename(columns={"index_value": "value"})) for k, v in series.items()
        }

    # A market-data correction inside the index's history rebuilds the index (D61), so its values stand for it.
    tables = ("daily_index_values", "coins", "coin_categories", "index_definitions")
    try:
        return dict(derived(store, "benchmarks", tables, compute, name, base, through))
    except KallosError as exc:
        log.warning("index benchmarks not drawn: %s", exc)
        return {}


def _levels(store: Store, name: str) -> list[dict[str, Any]]:
    """Another named index's levels, drawn beside the chosen one as a benchmark."""
    frame = store.query(
        'SELECT "date", index_value AS value FROM daily_index_values WHERE index_name = :n ORDER BY "date"', {"n": name}
    )
    return records(frame)


# ---- signals ------------------------------------------------------------------------------------------------
_DERIVED: dict[tuple[Any, ...], Any] = {}


def derived(store: Store, name: str, tables: Sequence[str], compute: Callable[[], Any], *key: Any) -> Any:
    """`compute()`, kept until `tables` change (their row counts and newest `updated_at`: docs/decisions.md#D96).

    For what takes seconds to compute from data that changes once a day (signal hit rates, index benchmarks)."""
    parts = [f"(SELECT count(*) FROM {t}) AS n{i}" for i, t in enumerate(tables)]
    parts += [f"(SELECT max(updated_at) FROM {t}) AS u{i}" for i, t in enumerate(tables)
              if "updated_at" in TABLES[t].column_names]  # fmt: skip
    fingerprint = (store.url, name, *key, *store.query(f"SELECT {', '.join(parts)}").iloc[0].map(str))
    if fingerprint not in _DERIVED:
        if len(_DERIVED) >= 16:
            _DERIVED.pop(next(iter(_DERIVED)))
        _DERIVED[fingerprint] = compute()
    return _DERIVED[fingerprint]


def evaluation(store: Store, since: dt.date) -> list[dict[str, Any]]:
    """Hit rates by `kallos signals evaluate`'s own function over the signals since `since` (cached, D96)."""
    from kallos.signals.evaluation import evaluate_signals

    def compute() -> list[dict[str, Any]]:
        sig = store.read("trading_signals", start=since, columns=["date", "signal", "direction", "action"])
        closes = store.read("daily_market_data", start=since, columns=["date", "close"])
        return records(evaluate_signals(sig, closes, (1, 7, 30))) if len(sig) else []

    return derived(store, "evaluation", ("trading_signals", "daily_market_data"), compute, since)


def signals_page(store: Store, *, evaluation_days: int = 365) -> dict[str, Any]:
    last = store.scalar('SELECT max("date") FROM trading_signals')
    if last is None:
        return {"empty": True, "latest_date": None, "latest": [], "history": [], "evaluation": []}
    last_d = pd.Timestamp(last).date()
    latest = store.query(
        "SELECT c.coingecko_id AS coin_id, c.symbol, s.signal, s.direction, s.strength, s.composite_score, s.action "
        'FROM trading_signals s JOIN coins c ON c.coin_id = s.coin_id WHERE s."date" = :d '
        "ORDER BY (s.signal = 'composite') DESC, abs(coalesce(s.composite_score, 0)) DESC, s.strength DESC, 1, 3",
        {"d": last_d},
    )
    history = store.query(
        "SELECT date_trunc('week', \"date\") AS week, "
        "sum(CASE WHEN action = 'buy' THEN 1 ELSE 0 END) AS buy, "
        "sum(CASE WHEN action = 'sell' THEN 1 ELSE 0 END) AS sell, "
        "sum(CASE WHEN signal <> 'composite' THEN 1 ELSE 0 END) AS rules "
        'FROM trading_signals WHERE "date" > :since GROUP BY 1 ORDER BY 1',
        {"since": last_d - dt.timedelta(days=730)},
    )
    since = last_d - dt.timedelta(days=evaluation_days)
    return {
        "empty": False,
        "latest_date": last_d.isoformat(),
        "latest": records(latest.head(300)),
        "history": records(history.assign(week=pd.to_datetime(history["week"]).dt.date)),
        "evaluation": evaluation(store, since),
        "evaluation_window": {"start": since.isoformat(), "end": last_d.isoformat()},
    }
