"""Performance metrics of an index level series (docs/decisions.md (C-IDX) item 10, docs/decisions.md#D19).

Takes the stored shape (date, index_value, daily_return) so `kallos index report` computes the same numbers
from the database as `build_index` does in memory.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

METRIC_KEYS = (
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe",
    "max_drawdown",
    "max_drawdown_peak",
    "max_drawdown_trough",
    "avg_monthly_turnover",
)


def _date(value: Any) -> dt.date:
    return pd.Timestamp(value).date()


def max_drawdown(dates: pd.Series, levels: np.ndarray) -> tuple[float, dt.date | None, dt.date | None]:
    """min_t(L_t / max_{u<=t} L_u − 1); trough = first date at the minimum, peak = the last running-maximum
    date before it; both None when the drawdown is 0."""
    if levels.size == 0:
        return math.nan, None, None
    running = np.maximum.accumulate(levels)
    dd = levels / running - 1.0
    worst = float(dd.min())
    if worst >= 0.0:
        return 0.0, None, None
    trough = int(np.argmax(dd == worst))
    at_max = np.flatnonzero(levels[:trough] == running[trough])
    peak = int(at_max[-1])
    return worst, _date(dates.iloc[peak]), _date(dates.iloc[trough])


def compute_metrics(
    values: pd.DataFrame,
    turnover: pd.DataFrame | pd.Series | None = None,
    *,
    annualization: float = 365,
    risk_free: float = 0.0,
    level_column: str = "index_value",
    return_column: str = "daily_return",
) -> dict[str, Any]:
    """Metrics over the daily returns after the base date (the first row of ``values``)."""
    values = values.sort_values("date")
    dates = values["date"].reset_index(drop=True)
    levels = values[level_column].to_numpy(dtype=np.float64)
    returns = values[return_column].to_numpy(dtype=np.float64)[1:]
    out: dict[str, Any] = dict.fromkeys(METRIC_KEYS, math.nan)
    out["max_drawdown_peak"] = out["max_drawdown_trough"] = None
    if levels.size:
        growth = levels[-1] / levels[0]
        days = (pd.Timestamp(dates.iloc[-1]) - pd.Timestamp(dates.iloc[0])).days
        out["total_return"] = float(growth - 1.0)
        out["annualized_return"] = float(growth ** (annualization / days) - 1.0) if days > 0 else math.nan
    if returns.size >= 2:
        std = float(np.std(returns, ddof=1))
        out["volatility"] = std * math.sqrt(annualization)
        rf_d = (1.0 + risk_free) ** (1.0 / annualization) - 1.0
        excess = returns - rf_d
        ex_std = float(np.std(excess, ddof=1))
        out["sharpe"] = float(excess.mean() / ex_std * math.sqrt(annualization)) if ex_std > 0 else math.nan
    mdd, peak, trough = max_drawdown(dates, levels)
    out["max_drawdown"], out["max_drawdown_peak"], out["max_drawdown_trough"] = mdd, peak, trough
    if turnover is not None:
        series = turnover["turnover"] if isinstance(turnover, pd.DataFrame) else turnover
        if len(series):
            out["avg_monthly_turnover"] = float(np.mean(series.to_numpy(dtype=np.float64)))
    return out


def drawdown_series(levels: pd.Series) -> pd.Series:
    """L_t / max_{u<=t} L_u − 1, for charts."""
    return levels / levels.cummax() - 1.0
