"""The index step of the pipeline: store -> :func:`build_index` -> store (decisions.md #16, #20, #34).

Each build recomputes the whole index from the one persisted base date (`KALLOS_INDEX_BASE_DATE`, else
the first qualifying month end, stored in `kallos_state` at the first build) through the last month that
has ended in the stored data, then writes only what changed: a month's constituents are replaced as a
whole, daily values and turnover are upserted by date. `start`/`end` only limit which months are
written. When no month end has enough eligible coins yet, the step is `skipped` with a warning, not a
failure.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd

from kallos.index.build import IndexResult, NoQualifyingSelectionError, build_index
from kallos.index.exclusions import excluded_coins
from kallos.index.panel import as_date
from kallos.log import get_logger
from kallos.pipeline.contract import ExtraValue, StepContext, StepOutcome
from kallos.settings import Settings
from kallos.store import Store

log = get_logger(__name__)

BASE_DATE_KEY = "index_base_date"
CONSTITUENTS = "index_monthly_constituents"
VALUES = "daily_index_values"
TURNOVER = "index_turnover"
_VALUE_COLUMNS = ("index_value", "daily_return", "net_index_value", "net_daily_return")


def last_month_end(day: dt.date) -> dt.date:
    """The last month end on or before ``day`` (``day`` itself when it is one)."""
    if (day + dt.timedelta(days=1)).month != day.month:
        return day
    return day.replace(day=1) - dt.timedelta(days=1)


def month_window(start: dt.date | None, end: dt.date | None) -> tuple[dt.date | None, dt.date | None]:
    """Widen ``start``/``end`` to whole months: they select months to write."""
    lo = start.replace(day=1) if start else None
    hi = None
    if end:
        nxt = (end.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        hi = nxt - dt.timedelta(days=1)
    return lo, hi


def read_base_date(store: Store) -> dt.date | None:
    state = store.read("kallos_state")
    row = state.loc[state["key"] == BASE_DATE_KEY, "value"]
    if row.empty or row.iloc[0] in (None, ""):
        return None
    return dt.date.fromisoformat(str(row.iloc[0]))


def read_exclusions(store: Store) -> set[str]:
    categories = store.read("coin_categories", columns=["coin_id", "category_id", "name"])
    coins = store.read("coins", columns=["coingecko_id", "category"])
    return excluded_coins(categories, coins)


def read_market(store: Store) -> pd.DataFrame:
    return store.read("daily_market_data", columns=["coin_id", "date", "close", "market_cap"])


def _in_window(dates: pd.Series, lo: dt.date | None, hi: dt.date | None) -> pd.Series:
    keep = pd.Series(True, index=dates.index)
    if lo is not None:
        keep &= dates >= pd.Timestamp(lo)
    if hi is not None:
        keep &= dates <= pd.Timestamp(hi)
    return keep


def _changed_rows(new: pd.DataFrame, old: pd.DataFrame, key: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows of ``new`` absent from ``old`` or differing in any of ``columns`` (exact: rebuilds are
    deterministic; NULL equals NULL)."""
    if old.empty or new.empty:
        return new
    cols = [c for c in columns if c in new.columns or c in old.columns]
    left = new[[key]].copy()
    for c in cols:
        left[c] = new[c].astype(float) if c in new.columns else np.nan
    right = old[[key]].copy()
    for c in cols:
        right[c + "_old"] = old[c].astype(float) if c in old.columns else np.nan
    merged = left.merge(right, on=key, how="left", indicator=True)
    differs = (merged["_merge"] != "both").to_numpy().copy()
    for c in cols:
        a, b = merged[c].to_numpy(dtype=float), merged[c + "_old"].to_numpy(dtype=float)
        differs |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return new.iloc[np.flatnonzero(differs)]


def _months_changed(new: pd.DataFrame, old: pd.DataFrame) -> list[tuple[int, int]]:
    """(year, month) whose stored constituents differ from the rebuilt ones in any coin or value."""
    key = ["selection_date", "coin_id"]
    vals = ["rank", "market_cap", "weight"]
    a = new[key + vals].astype({"coin_id": str})
    b = old[key + vals].astype({"coin_id": str}) if not old.empty else pd.DataFrame(columns=key + vals)
    merged = a.merge(b, on=key, how="outer", suffixes=("", "_old"), indicator=True)
    bad = (merged["_merge"] != "both").to_numpy().copy()
    for c in vals:
        bad |= ~(merged[c].to_numpy(dtype=float) == merged[c + "_old"].to_numpy(dtype=float))
    dates = pd.to_datetime(merged.loc[bad, "selection_date"])
    return sorted({(int(d.year), int(d.month)) for d in dates})


def write_result(
    store: Store,
    result: IndexResult,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    run_id: str | None = None,
) -> dict[str, int]:
    """Write the months of ``result`` inside [start, end] (whole months), changed rows only."""
    lo, hi = month_window(start, end)
    counts = {
        "months_written": 0,
        "constituent_rows": 0,
        "value_rows": 0,
        "turnover_rows": 0,
        "deleted_rows": 0,
    }

    cons = result.constituents.loc[_in_window(result.constituents["selection_date"], lo, hi)].copy()
    cons["year"] = cons["selection_date"].dt.year.astype(int)
    cons["month"] = cons["selection_date"].dt.month.astype(int)
    cons["run_id"] = run_id
    values = result.values.loc[_in_window(result.values["date"], lo, hi)].copy()
    for column in _VALUE_COLUMNS:
        if column not in values.columns:
            values[column] = np.nan  # a rebuild without costs clears a stored net series
    values["run_id"] = run_id
    turnover = result.turnover.loc[_in_window(result.turnover["selection_date"], lo, hi)].copy()
    turnover["run_id"] = run_id

    with store.transaction():
        old_cons = store.read(CONSTITUENTS, start=lo, end=hi)
        stored_months = set(
            zip(old_cons["selection_date"].dt.year, old_cons["selection_date"].dt.month, strict=True)
        )
        fresh = []
        for year, month in _months_changed(cons, old_cons):
            frame = cons.loc[(cons["year"] == year) & (cons["month"] == month)]
            counts["months_written"] += 1
            counts["constituent_rows"] += len(frame)
            if (year, month) not in stored_months:
                fresh.append(frame)  # nothing to replace: one bulk insert for all new months
                continue
            store.replace(CONSTITUENTS, frame, where={"year": year, "month": month})
            sel = old_cons["selection_date"]
            before = int(((sel.dt.year == year) & (sel.dt.month == month)).sum())
            counts["deleted_rows"] += max(before - len(frame), 0)
        if fresh:
            store.upsert(CONSTITUENTS, pd.concat(fresh, ignore_index=True))

        old_values = store.read(VALUES, start=lo, end=hi)
        changed = _changed_rows(values, old_values, "date", _VALUE_COLUMNS)
        if not changed.empty:
            store.upsert(VALUES, changed)
        counts["value_rows"] = len(changed)
        counts["deleted_rows"] += _delete_outside(store, VALUES, "date", old_values, values, lo, hi)

        old_turn = store.read(TURNOVER, start=lo, end=hi)
        changed_t = _changed_rows(turnover, old_turn, "selection_date", ("turnover",))
        if not changed_t.empty:
            store.upsert(TURNOVER, changed_t)
        counts["turnover_rows"] = len(changed_t)
        counts["deleted_rows"] += _delete_outside(
            store, TURNOVER, "selection_date", old_turn, turnover, lo, hi
        )
    return counts


def _delete_outside(
    store: Store,
    table: str,
    column: str,
    old: pd.DataFrame,
    new: pd.DataFrame,
    lo: dt.date | None,
    hi: dt.date | None,
) -> int:
    """Delete stored rows of the window that the rebuild no longer produces (e.g. a moved base date)."""
    if old.empty:
        return 0
    stale = old.loc[~old[column].isin(set(new[column]))]
    if stale.empty:
        return 0
    col = f'"{column}"'
    inside = stale[column]
    if not new.empty:
        # rows before or after the rebuilt span (a moved base date): two range deletes, not one per row
        first, last = new[column].min(), new[column].max()
        bounds = {"first": pd.Timestamp(first).date(), "last": pd.Timestamp(last).date()}
        where = [f"({col} < :first OR {col} > :last)"]
        if lo is not None:
            where.append(f"{col} >= :lo")
            bounds["lo"] = lo
        if hi is not None:
            where.append(f"{col} <= :hi")
            bounds["hi"] = hi
        store.execute(f"DELETE FROM {table} WHERE {' AND '.join(where)}", bounds)
        inside = inside[(inside >= first) & (inside <= last)]
    for day in inside:
        store.execute(f"DELETE FROM {table} WHERE {col} = :d", {"d": pd.Timestamp(day).date()})
    return len(stale)


def index_step(
    ctx: StepContext, *, start: dt.date | str | None = None, end: dt.date | str | None = None
) -> StepOutcome:
    """The index build as a step (docs/decisions.md#D37); rows are stamped with the context's run id."""
    return _build(ctx.store, ctx.settings, start=start, end=end, run_id=ctx.run_id)


def build_step(
    store: Store,
    settings: Settings,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    *,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Rebuild the index from the base date and write the months in [start, end] that changed.

    Returns counts and ``status`` (`success` or `skipped`); raises
    :class:`~kallos.errors.IndexConstructionError` when a month end after the base date has too few
    eligible coins.
    """
    return _build(store, settings, start=start, end=end, run_id=run_id).counts()


def _build(
    store: Store,
    settings: Settings,
    *,
    start: dt.date | str | None,
    end: dt.date | str | None,
    run_id: str | None,
) -> StepOutcome:
    t0 = time.perf_counter()
    start_d = as_date(start, "start") if start is not None else None
    end_d = as_date(end, "end") if end is not None else None
    market = read_market(store)
    if market.empty:
        log.warning("index skipped: no market data stored", extra={"step": "index"})
        return StepOutcome.skipped("no market data stored")
    last_day = pd.Timestamp(market["date"].max()).date()
    through = last_month_end(last_day)
    configured = settings.index_base_date
    stored_base = read_base_date(store)
    base = configured or stored_base
    exclude = read_exclusions(store)
    try:
        result = build_index(market, exclude=exclude, start=base, end=through)
    except NoQualifyingSelectionError as exc:
        log.warning(
            "index skipped: no month end qualifies yet (too little stored history, or none since the base)",
            extra={"step": "index", "detail": str(exc)},
        )
        return StepOutcome.skipped(str(exc), base_date=base.isoformat() if base else None)
    if configured is None and stored_base is None:
        store.upsert(
            "kallos_state", pd.DataFrame({"key": [BASE_DATE_KEY], "value": [result.base_date.isoformat()]})
        )
    counts = write_result(store, result, start=start_d, end=end_d, run_id=run_id)
    extra: dict[str, ExtraValue] = {
        "base_date": result.base_date.isoformat(),
        "through": str(result.params["end"]),
        **counts,
        "fills": len(result.fills),
        "excluded": len(exclude & set(market["coin_id"])),  # stored coins left out, not the whole list
    }
    log.info(
        "index built",
        extra={"step": "index", **extra, "duration_seconds": round(time.perf_counter() - t0, 3)},
    )
    return StepOutcome(
        rows_written=counts["constituent_rows"] + counts["value_rows"] + counts["turnover_rows"],
        extra=extra,
    )


def read_index(store: Store) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The stored index: daily values, constituents (CoinGecko ids) and turnover, sorted by date."""
    values = store.read(VALUES).drop(columns=["run_id"], errors="ignore")
    if values["net_index_value"].isna().all():
        values = values.drop(columns=["net_index_value", "net_daily_return"])
    constituents = store.read(CONSTITUENTS).drop(columns=["run_id", "year", "month"], errors="ignore")
    constituents = constituents.sort_values(["selection_date", "rank"], ignore_index=True)
    turnover = store.read(TURNOVER).drop(columns=["run_id"], errors="ignore")
    return values, constituents, turnover


def report_step(
    store: Store, out_dir: Any, *, annualization: float = 365, risk_free: float = 0.0
) -> dict[str, Any]:
    """Metrics from the stored series, plus the PNG charts and the HTML report in ``out_dir``."""
    from kallos.errors import InputError
    from kallos.index.metrics import compute_metrics
    from kallos.index.report import write_report

    values, constituents, turnover = read_index(store)
    if values.empty:
        raise InputError("no index values stored; run `kallos index build` first", table=VALUES)
    metrics = compute_metrics(values, turnover, annualization=annualization, risk_free=risk_free)
    paths = write_report(out_dir, values, constituents, metrics)
    return {
        "metrics": metrics,
        "paths": paths,
        "base_date": values["date"].min(),
        "through": values["date"].max(),
    }
