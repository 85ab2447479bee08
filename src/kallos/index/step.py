"""The index step of the pipeline: store -> :func:`build_index` -> store, for every named index.

Each build recomputes an index from its one persisted base date (docs/decisions.md#D34) through the last final
day stored (docs/decisions.md#D60): inside the current month the index is valued from the last rebalance's
basket, drifted, so the daily run adds each day's value; month ends rebalance as before. Only what changed is
written: a month's constituents are replaced as a whole, daily values and turnover are upserted by date, so a
rebuild with nothing changed writes nothing. Every market-data write marks the indices dirty from the earliest
date it changed (`index_definitions.dirty_from`, docs/decisions.md#D61); an index is due when it is marked,
when a newer final day is stored, or when it was never built. `start`/`end` only limit which months are
written. When no month end has enough eligible coins yet, the index is `skipped`, not failed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kallos import clock
from kallos.errors import IndexConstructionError, InputError
from kallos.index.build import IndexResult, NoQualifyingSelectionError, build_index
from kallos.index.definition import DEFAULT_NAME, IndexDefinition, default_definition
from kallos.index.exclusions import excluded_by_rules
from kallos.index.panel import as_date
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.pipeline.schedule import index_due, month_end_on_or_before
from kallos.settings import Settings
from kallos.store import Store

log = get_logger(__name__)

BASE_DATE_KEY = "index_base_date"
"""The base date's key in `kallos_state` before named indices (migration 3 copies it to the definitions)."""
CONSTITUENTS = "index_monthly_constituents"
VALUES = "daily_index_values"
TURNOVER = "index_turnover"
DEFINITIONS = "index_definitions"
_VALUE_COLUMNS = ("index_value", "daily_return", "net_index_value", "net_daily_return")

last_month_end = month_end_on_or_before


def month_window(start: dt.date | None, end: dt.date | None) -> tuple[dt.date | None, dt.date | None]:
    """Widen ``start``/``end`` to whole months: they select months to write."""
    lo = start.replace(day=1) if start else None
    hi = None
    if end:
        nxt = (end.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        hi = nxt - dt.timedelta(days=1)
    return lo, hi


def read_definitions(store: Store) -> pd.DataFrame:
    """The stored index definitions (index_name, params, base_date, dirty_from, built_through, built_at)."""
    return store.read(DEFINITIONS).set_index("index_name", drop=False)


def _stored(defs: pd.DataFrame, name: str, column: str) -> Any:
    if name not in defs.index:
        return None
    value = defs.at[name, column]
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _day(value: Any) -> dt.date | None:
    return None if value is None else pd.Timestamp(value).date()


def read_base_date(store: Store, name: str = DEFAULT_NAME, stored: pd.DataFrame | None = None) -> dt.date | None:
    """The persisted base date of index ``name`` (for `default`, also the pre-named-index location)."""
    base = _day(_stored(read_definitions(store) if stored is None else stored, name, "base_date"))
    if base is None and name == DEFAULT_NAME:
        state = store.read("kallos_state")
        row = state.loc[state["key"] == BASE_DATE_KEY, "value"]
        if not row.empty and row.iloc[0] not in (None, ""):
            base = dt.date.fromisoformat(str(row.iloc[0]))
    return base


def definitions(store: Store, settings: Any, names: Sequence[str] | None = None) -> list[IndexDefinition]:
    """`default` from the settings, every other index from its stored methodology; ``names`` picks some."""
    defs = read_definitions(store)
    out = {DEFAULT_NAME: default_definition(settings)}
    for name in defs.index:
        if name != DEFAULT_NAME and _stored(defs, name, "params") is not None:
            out[name] = IndexDefinition.from_params(name, defs.at[name, "params"])
    if names is None:
        return list(out.values())
    unknown = [n for n in names if n not in out]
    if unknown:
        raise InputError(
            "no index of that name is defined (define one with `kallos index build --name NAME` and options)",
            name=unknown[0],
            defined=sorted(out),
        )
    return [out[n] for n in names]


def save_definition(store: Store, definition: IndexDefinition) -> bool:
    """Store a named index's methodology; True when it is new or changed (the next build rewrites it all)."""
    defs = read_definitions(store)
    before = _stored(defs, definition.name, "params")
    if before == definition.to_json():
        return False
    row: dict[str, Any] = {"index_name": definition.name, "params": definition.to_json()}
    if before is not None:
        log.warning(
            "index methodology changed: its whole history is rebuilt from a new base date",
            extra={"index": definition.name, "was": before, "now": definition.to_json()},
        )
        row["base_date"] = None  # the first qualifying month end under the new rules
    store.upsert(DEFINITIONS, pd.DataFrame([row]))
    return True


def read_exclusion_inputs(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored categories and coins the exclusion rules read."""
    categories = store.read("coin_categories", columns=["coin_id", "category_id", "name"])
    coins = store.read("coins", columns=["coingecko_id", "category"])
    return categories, coins


def read_exclusions(store: Store, rules: Sequence[str] = ("default",)) -> set[str]:
    """The stored coins excluded under ``rules`` (an index definition's `excluded_categories`)."""
    return excluded_by_rules(*read_exclusion_inputs(store), rules)


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
    if new.empty and old.empty:
        return []
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
    name: str = DEFAULT_NAME,
    start: dt.date | None = None,
    end: dt.date | None = None,
    run_id: str | None = None,
) -> dict[str, int]:
    """Write the months of index ``name`` inside [start, end] (whole months), changed rows only."""
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
    cons["index_name"] = name
    values = result.values.loc[_in_window(result.values["date"], lo, hi)].copy()
    for column in _VALUE_COLUMNS:
        if column not in values.columns:
            values[column] = np.nan  # a rebuild without costs clears a stored net series
    values["run_id"] = run_id
    values["index_name"] = name
    turnover = result.turnover.loc[_in_window(result.turnover["selection_date"], lo, hi)].copy()
    turnover["run_id"] = run_id
    turnover["index_name"] = name
    only = {"index_name": name}

    with store.transaction():
        old_cons = store.read(CONSTITUENTS, start=lo, end=hi, where=only)
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
            store.replace(CONSTITUENTS, frame, where={"index_name": name, "year": year, "month": month})
            sel = old_cons["selection_date"]
            before = int(((sel.dt.year == year) & (sel.dt.month == month)).sum())
            counts["deleted_rows"] += max(before - len(frame), 0)
        if fresh:
            store.upsert(CONSTITUENTS, pd.concat(fresh, ignore_index=True))

        old_values = store.read(VALUES, start=lo, end=hi, where=only)
        changed = _changed_rows(values, old_values, "date", _VALUE_COLUMNS)
        if not changed.empty:
            store.upsert(VALUES, changed)
        counts["value_rows"] = len(changed)
        counts["deleted_rows"] += _delete_outside(store, VALUES, "date", old_values, values, lo, hi, name)

        old_turn = store.read(TURNOVER, start=lo, end=hi, where=only)
        changed_t = _changed_rows(turnover, old_turn, "selection_date", ("turnover",))
        if not changed_t.empty:
            store.upsert(TURNOVER, changed_t)
        counts["turnover_rows"] = len(changed_t)
        counts["deleted_rows"] += _delete_outside(
            store, TURNOVER, "selection_date", old_turn, turnover, lo, hi, name
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
    name: str,
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
        bounds: dict[str, Any] = {"first": pd.Timestamp(first).date(), "last": pd.Timestamp(last).date(), "n": name}
        where = ["index_name = :n", f"({col} < :first OR {col} > :last)"]
        if lo is not None:
            where.append(f"{col} >= :lo")
            bounds["lo"] = lo
        if hi is not None:
            where.append(f"{col} <= :hi")
            bounds["hi"] = hi
        store.execute(f"DELETE FROM {table} WHERE {' AND '.join(where)}", bounds)
        inside = inside[(inside >= first) & (inside <= last)]
    for day in inside:
        store.execute(
            f"DELETE FROM {table} WHERE index_name = :n AND {col} = :d", {"n": name, "d": pd.Timestamp(day).date()}
        )
    return len(stale)


def build_index_for(
    store: Store,
    settings: Any,
    definition: IndexDefinition,
    market: pd.DataFrame,
    *,
    through: dt.date,
    exclusion_inputs: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    base: dt.date | None = None,
) -> IndexResult:
    """Compute index ``definition`` from its base date (the configured or stored one) through ``through``."""
    if base is None:
        configured = settings.index_base_date if definition.name == DEFAULT_NAME else None
        base = configured or read_base_date(store, definition.name)
    categories, coins = exclusion_inputs or read_exclusion_inputs(store)
    exclude = excluded_by_rules(categories, coins, definition.excluded_categories)
    return build_index(market, exclude=exclude, start=base, end=through, **definition.build_kwargs())


def last_day_valued(market: pd.DataFrame, now: dt.datetime) -> dt.date:
    """The last final day with stored market data: the index is valued through it (docs/decisions.md#D60)."""
    return min(pd.Timestamp(market["date"].max()).date(), clock.last_final_day(now))


def _build_one(
    ctx: StepContext,
    definition: IndexDefinition,
    market: pd.DataFrame,
    exclusion_inputs: tuple[pd.DataFrame, pd.DataFrame],
    stored: pd.DataFrame,
    *,
    start: dt.date | None,
    end: dt.date | None,
    only_due: bool,
) -> dict[str, Any]:
    store, name = ctx.store, definition.name
    through = last_day_valued(market, ctx.now)
    seen_mark = _day(_stored(stored, name, "dirty_from"))
    if only_due:
        due, why = index_due(through, _day(_stored(stored, name, "built_through")), seen_mark)
        if not due:
            return {"status": "skipped", "reason": f"not due: {why}"}
    configured = ctx.settings.index_base_date if name == DEFAULT_NAME else None
    stored_base = read_base_date(store, name, stored)
    try:
        result = build_index_for(
            store,
            ctx.settings,
            definition,
            market,
            through=through,
            exclusion_inputs=exclusion_inputs,
            base=configured or stored_base,
        )
    except NoQualifyingSelectionError as exc:
        log.warning(
            "index skipped: no month end qualifies yet (too little stored history, or none since the base)",
            extra={"step": "index", "index": name, "detail": str(exc)},
        )
        return {"status": "skipped", "reason": str(exc)}
    if end is not None and end < result.base_date:
        raise IndexConstructionError(
            f"no month end qualifies on or before --end {end}: the index {name!r} starts at its base date "
            f"{result.base_date} (the first month end with enough eligible coins); give an --end on or after it",
            end=end.isoformat(),
            base_date=result.base_date.isoformat(),
        )
    with store.transaction():
        counts = write_result(store, result, name=name, start=start, end=end, run_id=ctx.run_id)
        row: dict[str, Any] = {
            "index_name": name,
            "params": definition.to_json(),
            "built_through": result.params["end"],
            "built_at": pd.Timestamp(ctx.now),
        }
        if configured is None and stored_base is None:
            row["base_date"] = result.base_date
        store.upsert(DEFINITIONS, pd.DataFrame([row]))
        if seen_mark is not None and start is None and end is None:
            # the mark read before the build is consumed; an earlier one set meanwhile survives
            store.execute(
                f"UPDATE {DEFINITIONS} SET dirty_from = NULL WHERE index_name = :n AND dirty_from = :d",
                {"n": name, "d": seen_mark},
            )
    return {
        "status": "success",
        "base_date": result.base_date.isoformat(),
        "through": result.params["end"],
        "rebuilt_from": seen_mark.isoformat() if seen_mark else None,
        **counts,
        "fills": len(result.fills),
        "excluded": len(set(result.params["excluded"]) & set(market["coin_id"])),
    }


def index_step(
    ctx: StepContext,
    *,
    names: Sequence[str] | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    only_due: bool = False,
) -> StepOutcome:
    """Rebuild every index (or ``names``) and write the months in [start, end] that changed.

    With ``only_due`` (the daily run) an index is built only when it is marked dirty, a newer final day is
    stored, or it was never built. An index whose month end after its base date has too few eligible coins fails
    alone: the others are still built and the outcome is `partial`; when no index was built, the
    :class:`~kallos.errors.IndexConstructionError` is raised. ``extra`` holds the totals and, per index,
    ``<name>.status``, ``<name>.through`` and ``<name>.base_date``.
    """
    t0 = time.perf_counter()
    start_d = as_date(start, "start") if start is not None else None
    end_d = as_date(end, "end") if end is not None else None
    store = ctx.store
    chosen = definitions(store, ctx.settings, names)
    market = read_market(store)
    if market.empty:
        log.warning("index skipped: no market data stored", extra={"step": "index"})
        return StepOutcome.skipped("no market data stored")
    stored = read_definitions(store)
    exclusion_inputs = read_exclusion_inputs(store)
    totals = dict.fromkeys(
        ("months_written", "constituent_rows", "value_rows", "turnover_rows", "deleted_rows", "fills"), 0
    )
    extra: dict[str, Any] = {}
    built = 0
    errors: list[IndexConstructionError] = []
    for definition in chosen:
        name = definition.name
        try:
            out = _build_one(
                ctx, definition, market, exclusion_inputs, stored, start=start_d, end=end_d, only_due=only_due
            )
        except IndexConstructionError as exc:
            # one index's failure does not hold back the others; it is reported and raised below
            log.error("index failed", extra={"index": name, "detail": str(exc)})
            errors.append(exc)
            out = {"status": "failed", "reason": str(exc)}
        extra[f"{name}.status"] = out["status"]
        for key in ("through", "base_date", "rebuilt_from", "reason"):
            if out.get(key) is not None:
                extra[f"{name}.{key}"] = out[key]
        for key in totals:
            totals[key] += int(out.get(key, 0))
        built += out["status"] == "success"
        if out["status"] != "failed":
            log.info("index " + ("built" if out["status"] == "success" else "skipped"), extra={"index": name, **out})
    extra.update(totals, indices=built, duration_seconds=round(time.perf_counter() - t0, 3))
    if errors and not built:
        raise errors[0]
    if errors:
        failed = [d.name for d in chosen if extra[d.name + ".status"] == "failed"]
        reasons = "; ".join(f"{n}: {extra[n + '.reason']}" for n in failed)
        rows = totals["constituent_rows"] + totals["value_rows"] + totals["turnover_rows"]
        return StepOutcome(status="partial", rows_written=rows, reason=reasons, extra=extra)
    if not built:
        reasons = "; ".join(f"{d.name}: {extra.get(d.name + '.reason', '')}" for d in chosen)
        return StepOutcome(status="skipped", reason=reasons, extra=extra)
    rows = totals["constituent_rows"] + totals["value_rows"] + totals["turnover_rows"]
    return StepOutcome(status="success", rows_written=rows, extra=extra)


def build_step(
    store: Store,
    settings: Settings,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    *,
    run_id: str | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """:func:`index_step` as the flat dict of the Python API (docs/decisions.md#D37); ``base_date`` and
    ``through`` are the default index's (or the one index built)."""
    ctx = StepContext(store=store, settings=settings, run_id=run_id or "", now=clock.utcnow())
    outcome = index_step(ctx, names=names, start=start, end=end)
    out = outcome.counts()
    first = (names or [DEFAULT_NAME])[0]
    for key in ("base_date", "through", "rebuilt_from"):
        if f"{first}.{key}" in outcome.extra:
            out[key] = outcome.extra[f"{first}.{key}"]
    return out


def read_index(
    store: Store, name: str = DEFAULT_NAME
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The stored index ``name``: daily values, constituents (CoinGecko ids) and turnover, sorted by date."""
    only = {"index_name": name}
    drop = ["run_id", "index_name", "updated_at"]
    values = store.read(VALUES, where=only).drop(columns=drop, errors="ignore")
    if values["net_index_value"].isna().all():
        values = values.drop(columns=["net_index_value", "net_daily_return"])
    constituents = store.read(CONSTITUENTS, where=only).drop(columns=[*drop, "year", "month"], errors="ignore")
    constituents = constituents.sort_values(["selection_date", "rank"], ignore_index=True)
    turnover = store.read(TURNOVER, where=only).drop(columns=drop, errors="ignore")
    return values, constituents, turnover


def list_indices(store: Store, settings: Any) -> pd.DataFrame:
    """One row per index: name, methodology, base date, built through, rows stored, pending mark."""
    stored = read_definitions(store)
    counts = store.query(f"SELECT index_name, count(*) AS days FROM {VALUES} GROUP BY index_name")
    days = dict(zip(counts["index_name"], counts["days"], strict=True))
    rows = []
    for d in definitions(store, settings):
        rows.append(
            {
                "index_name": d.name,
                "methodology": d.describe(),
                "base_date": read_base_date(store, d.name),
                "built_through": _day(_stored(stored, d.name, "built_through")),
                "days_stored": int(days.get(d.name, 0)),
                "dirty_from": _day(_stored(stored, d.name, "dirty_from")),
            }
        )
    return pd.DataFrame(rows)


def report_step(
    store: Store,
    settings: Any,
    out_dir: Any,
    *,
    name: str = DEFAULT_NAME,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    top: int = 5,
) -> dict[str, Any]:
    """Metrics over [start, end] beside the benchmarks', return tables, volatility, turnover and attribution
    from the stored index ``name``, written as PNG charts and one self-contained HTML file in ``out_dir``."""
    from kallos.index import analysis as an
    from kallos.index.benchmarks import benchmark_values, compare
    from kallos.index.metrics import compute_metrics
    from kallos.index.report import Analysis, coin_colours, write_report

    definition = definitions(store, settings, [name])[0]
    values, constituents, turnover = read_index(store, name)
    if values.empty:
        raise InputError("no index values stored; run `kallos index build` first", table=VALUES, name=name)
    base = pd.Timestamp(values["date"].min()).date()
    through = pd.Timestamp(values["date"].max()).date()
    lo = max(as_date(start, "start"), base) if start is not None else base
    hi = min(as_date(end, "end"), through) if end is not None else through
    if lo >= hi:
        raise InputError("the metrics window holds no returns", start=lo.isoformat(), end=hi.isoformat())

    market = read_market(store)
    rebuilt = build_index_for(store, settings, definition, market, through=through, base=base)
    benchmarks = benchmark_values(
        market,
        exclude=set(rebuilt.params["excluded"]),
        base_date=base,
        end=through,
        build_kwargs=definition.build_kwargs(),
        base_level=float(values["index_value"].iloc[0]),
    )
    label = f"index {name}"
    series = {label: values[["date", "index_value", "daily_return"]], **benchmarks}
    inside = {k: v.loc[_in_window(pd.to_datetime(v["date"]), lo, hi)] for k, v in series.items()}
    turn_in = turnover.loc[_in_window(pd.to_datetime(turnover["selection_date"]), lo, hi)]
    window_values = values.loc[_in_window(pd.to_datetime(values["date"]), lo, hi)]
    metrics = compute_metrics(window_values, turn_in, risk_free=definition.risk_free)
    comparison = compare(inside, {label: turn_in}, risk_free=definition.risk_free)

    yearly = an.yearly_contributions(rebuilt.attribution, rebuilt.values)
    order = constituents.groupby("coin_id")["weight"].sum().sort_values(ascending=False).index
    analysis = Analysis(
        comparison=comparison,
        window=(lo, hi),
        series=series,
        monthly=an.monthly_table(values),
        rolling_vol={k: an.rolling_volatility(v) for k, v in series.items()},
        turnover=turnover,
        yearly_contributions=yearly,
        movers_by_year=an.top_movers(yearly, "year", top),
        movers_by_month=an.top_movers(an.monthly_contributions(rebuilt.attribution), "month", top),
        colours=coin_colours([str(c) for c in order]),
    )
    title = "Kallos crypto index" + ("" if name == DEFAULT_NAME else f" '{name}'")
    paths = write_report(out_dir, values, constituents, metrics, title=title, analysis=analysis)
    return {
        "metrics": metrics,
        "comparison": comparison,
        "paths": paths,
        "base_date": values["date"].min(),
        "through": values["date"].max(),
        "window": (lo, hi),
        "attribution": rebuilt.attribution,
        "yearly_contributions": yearly,
    }
