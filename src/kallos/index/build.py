"""`build_index`: the market-cap-weighted, capped, monthly-rebalanced crypto index (docs/index.md).

Pure: a frame in, an :class:`IndexResult` out. The contract is docs/decisions.md (C-IDX); the edge cases are
docs/decisions.md#D18 to #D21. Options beyond the spec (rank buffer, transaction costs, a fill limit, quarterly
rebalancing) are keyword-only and off by default, so the defaults reproduce the spec exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kallos.errors import IndexConstructionError, InputError
from kallos.index.capping import cap_weights, min_coins_for_cap
from kallos.index.metrics import compute_metrics
from kallos.index.panel import Panel, as_date, build_panel, day_to_date, to_day_number
from kallos.index.selection import REBALANCE_MONTHS, Eligibility, Selection, choose, selection_rows
from kallos.index.valuation import Valuation, value_index


class NoQualifyingSelectionError(IndexConstructionError):
    """The index cannot start yet (docs/decisions.md#D20): no selection date has ⌈1 / max_weight⌉ eligible
    coins, or (with ``start``) no selection date falls on or after ``start``."""


@dataclass
class IndexResult:
    values: pd.DataFrame
    """date, index_value, daily_return (plus net_index_value, net_daily_return when ``cost_bps`` is given)."""
    constituents: pd.DataFrame
    """selection_date, coin_id, rank, market_cap, weight: the target weights set at each selection date."""
    turnover: pd.DataFrame
    """selection_date, turnover: one-way, at every rebalance after the first."""
    metrics: dict[str, Any]
    fills: pd.DataFrame
    """date, coin_id, close, filled_from: every constituent-day whose close was carried forward."""
    base_date: dt.date
    params: dict[str, Any] = field(default_factory=dict)
    eligible_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    """selection_date, eligible: how many coins passed the screens at each selection date valued."""
    attribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    """period_start, period_end, coin_id, start_weight, period_return, contribution: one row per constituent
    and calendar month (or part of one) held (docs/decisions.md#D64)."""


def check_params(
    n_constituents: int,
    max_weight: float,
    min_history_days: int,
    min_coverage: float,
    rebalance: str,
    rank_buffer: int,
    cost_bps: float | None,
    max_fill_days: int | None,
) -> int:
    if not 0 < max_weight <= 1:
        raise InputError("max_weight must be in (0, 1]", max_weight=max_weight)
    need = min_coins_for_cap(max_weight)
    if n_constituents < need:
        raise InputError(
            "n_constituents is below the ⌈1 / max_weight⌉ coins the cap needs",
            n_constituents=n_constituents,
            max_weight=max_weight,
        )
    if min_history_days < 0:
        raise InputError("min_history_days must be >= 0", min_history_days=min_history_days)
    if not 0 <= min_coverage <= 1:
        raise InputError("min_coverage must be in [0, 1]", min_coverage=min_coverage)
    if rebalance not in REBALANCE_MONTHS:
        raise InputError("rebalance must be 'M' (monthly) or 'Q' (quarterly)", rebalance=rebalance)
    if rank_buffer < 0:
        raise InputError("rank_buffer must be >= 0", rank_buffer=rank_buffer)
    if cost_bps is not None and not 0 <= cost_bps < 10_000:
        raise InputError("cost_bps must be in [0, 10000)", cost_bps=cost_bps)
    if max_fill_days is not None and max_fill_days < 0:
        raise InputError("max_fill_days must be >= 0", max_fill_days=max_fill_days)
    return need


def _first_selection(
    panel: Panel, rows: np.ndarray, elig: Eligibility, need: int, start: dt.date | None
) -> int:
    if start is not None:
        later = rows[panel.days[rows] >= to_day_number(start)]
        if later.size == 0:
            raise NoQualifyingSelectionError("no selection date on or after start", start=start.isoformat())
        return int(later[0])
    for row in rows:
        if elig.count(int(row)) >= need:
            return int(row)
    raise NoQualifyingSelectionError(
        f"no selection date has the {need} eligible coins a {1 / need:.0%}-or-wider cap needs",
        last_selection_date=panel.date_at(int(rows[-1])).isoformat() if rows.size else None,
    )


def build_index(
    market: pd.DataFrame,
    *,
    exclude: Collection[str] = (),
    n_constituents: int = 20,
    max_weight: float = 0.35,
    min_history_days: int = 1095,
    min_coverage: float = 0.9,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    base_level: float = 1000.0,
    risk_free: float = 0.0,
    annualization: float = 365,
    rebalance: str = "M",
    rank_buffer: int = 0,
    cost_bps: float | None = None,
    max_fill_days: int | None = None,
    weighting: str = "capped",
) -> IndexResult:
    """Build the index from daily (coin_id, date, close, market_cap) rows.

    Options off by default: ``rank_buffer`` (incumbents ranked within n + buffer keep their seat),
    ``cost_bps`` (a net series charged cost × one-way turnover at each rebalance after the first),
    ``max_fill_days`` (fail when a constituent's close is carried for longer), ``rebalance="Q"``
    (quarter-end selections). ``weighting`` `equal` or `market_cap` (uncapped) builds the benchmarks of
    docs/decisions.md#D63 from the same selections; `capped` is the index.
    """
    if weighting not in WEIGHTINGS:
        raise InputError("weighting must be capped, equal or market_cap", weighting=weighting)
    need = check_params(
        n_constituents,
        max_weight,
        min_history_days,
        min_coverage,
        rebalance,
        rank_buffer,
        cost_bps,
        max_fill_days,
    )
    if weighting != "capped":
        need = 1  # nothing to cap: any non-empty selection can be weighted
    start_d = as_date(start, "start") if start is not None else None
    end_d = as_date(end, "end") if end is not None else None
    if start_d is not None and end_d is not None and start_d > end_d:
        raise InputError("start is after end", start=start_d.isoformat(), end=end_d.isoformat())
    panel = build_panel(market, last_day=end_d)
    last_row = panel.row_of(end_d) if end_d is not None else len(panel.days) - 1
    if last_row >= len(panel.days):
        # `end` after the last stored day: value through the last stored day only
        last_row = len(panel.days) - 1
    excluded = np.isin(panel.coins, np.asarray(sorted({str(c) for c in exclude}), dtype=str))
    elig = Eligibility(panel, excluded=excluded, min_history_days=min_history_days, min_coverage=min_coverage)
    rows = selection_rows(panel, rebalance)
    rows = rows[rows <= last_row]
    base_row = _first_selection(panel, rows, elig, need, start_d)

    chosen: list[Selection] = []
    weights: list[np.ndarray] = []
    incumbents: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
    for row in rows[rows >= base_row]:
        row = int(row)
        mask = elig.mask(row)
        sel = choose(
            panel, row, mask, n_constituents=n_constituents, incumbents=incumbents, rank_buffer=rank_buffer
        )
        if sel.columns.size < need:
            raise IndexConstructionError(
                f"{sel.columns.size} eligible coin(s) at a selection date; a {max_weight:g} cap needs {need}",
                date=panel.date_at(row).isoformat(),
                eligible=int(sel.eligible),
            )
        chosen.append(sel)
        weights.append(_weights(sel.market_caps, max_weight, weighting))
        incumbents = sel.columns

    valuation = value_index(
        panel,
        [(s.row, s.columns, w) for s, w in zip(chosen, weights, strict=True)],
        last_row=last_row,
        base_level=base_level,
        max_fill_days=max_fill_days,
    )
    params = {
        "n_constituents": n_constituents,
        "max_weight": max_weight,
        "min_history_days": min_history_days,
        "min_coverage": min_coverage,
        "start": start_d.isoformat() if start_d else None,
        "end": panel.date_at(last_row).isoformat(),
        "base_level": base_level,
        "risk_free": risk_free,
        "annualization": annualization,
        "rebalance": rebalance,
        "rank_buffer": rank_buffer,
        "cost_bps": cost_bps,
        "max_fill_days": max_fill_days,
        "weighting": weighting,
        "excluded": sorted({str(c) for c in exclude}),
    }
    return _assemble(panel, chosen, weights, valuation, params, cost_bps, annualization, risk_free)


WEIGHTINGS = ("capped", "equal", "market_cap")


def _weights(market_caps: np.ndarray, max_weight: float, weighting: str) -> np.ndarray:
    if weighting == "equal":
        return np.full(market_caps.size, 1.0 / market_caps.size)
    if weighting == "market_cap":
        return market_caps / market_caps.sum()
    return cap_weights(market_caps, max_weight)


def _dates(panel: Panel, rows: np.ndarray) -> pd.Series:
    return pd.Series(panel.days[rows].astype("datetime64[D]").astype("datetime64[ns]"))


def _assemble(
    panel: Panel,
    chosen: list[Selection],
    weights: list[np.ndarray],
    valuation: Valuation,
    params: dict[str, Any],
    cost_bps: float | None,
    annualization: float,
    risk_free: float,
) -> IndexResult:
    values = pd.DataFrame(
        {
            "date": _dates(panel, valuation.rows),
            "index_value": valuation.level,
            "daily_return": valuation.daily_return,
        }
    )
    turnover = pd.DataFrame(
        {
            "selection_date": _dates(panel, np.asarray([r for r, _ in valuation.turnover], dtype=np.int64)),
            "turnover": np.asarray([t for _, t in valuation.turnover], dtype=np.float64),
        }
    )
    if cost_bps is not None:
        factor = np.ones(len(values))
        base_row = int(valuation.rows[0])
        for row, tau in valuation.turnover:
            factor[row - base_row] = 1.0 - cost_bps / 10_000.0 * tau
        net_growth = (1.0 + valuation.daily_return) * factor
        net_growth[0] = 1.0
        values["net_index_value"] = valuation.level[0] * np.cumprod(net_growth)
        values["net_daily_return"] = net_growth - 1.0
    constituents = pd.DataFrame(
        {
            "selection_date": _dates(
                panel, np.concatenate([np.full(s.columns.size, s.row) for s in chosen]).astype(np.int64)
            ),
            "coin_id": np.concatenate([panel.coins[s.columns] for s in chosen]).astype(object),
            "rank": np.concatenate([s.ranks for s in chosen]).astype(np.int64),
            "market_cap": np.concatenate([s.market_caps for s in chosen]),
            "weight": np.concatenate(weights),
        }
    )
    fills = pd.DataFrame(
        {
            "date": _dates(panel, np.asarray([f[0] for f in valuation.fills], dtype=np.int64)),
            "coin_id": pd.Series([str(panel.coins[f[1]]) for f in valuation.fills], dtype=object),
            "close": np.asarray([f[2] for f in valuation.fills], dtype=np.float64),
            "filled_from": _dates(panel, np.asarray([f[3] for f in valuation.fills], dtype=np.int64)),
        }
    ).sort_values(["date", "coin_id"], ignore_index=True)
    metrics = compute_metrics(values, turnover, annualization=annualization, risk_free=risk_free)
    metrics["fill_count"] = len(fills)
    if cost_bps is not None:
        net = compute_metrics(
            values,
            turnover,
            annualization=annualization,
            risk_free=risk_free,
            level_column="net_index_value",
            return_column="net_daily_return",
        )
        metrics.update(
            {f"net_{k}": net[k] for k in ("total_return", "annualized_return", "volatility", "sharpe")}
        )
    eligible_counts = pd.DataFrame(
        {
            "selection_date": _dates(panel, np.asarray([s.row for s in chosen], dtype=np.int64)),
            "eligible": np.asarray([s.eligible for s in chosen], dtype=np.int64),
        }
    )
    periods = valuation.periods
    sizes = [p.columns.size for p in periods]
    attribution = pd.DataFrame(
        {
            "period_start": _dates(panel, np.repeat([p.start_row for p in periods], sizes).astype(np.int64)),
            "period_end": _dates(panel, np.repeat([p.end_row for p in periods], sizes).astype(np.int64)),
            "coin_id": pd.Series(
                [str(c) for p in periods for c in panel.coins[p.columns]], dtype=object
            ),
            "start_weight": np.concatenate([p.start_weight for p in periods]) if periods else np.empty(0),
            "period_return": np.concatenate([p.period_return for p in periods]) if periods else np.empty(0),
        }
    )
    attribution["contribution"] = attribution["start_weight"] * attribution["period_return"]
    return IndexResult(
        values=values,
        constituents=constituents,
        turnover=turnover,
        metrics=metrics,
        fills=fills,
        base_date=day_to_date(int(panel.days[valuation.rows[0]])),
        params=params,
        eligible_counts=eligible_counts,
        attribution=attribution,
    )
