"""Return tables, rolling volatility and attribution summaries of an index series (docs/decisions.md#D64).

Pure: the stored shapes in (values: date, index_value, daily_return; attribution: period_start, period_end,
coin_id, start_weight, period_return, contribution), frames out.

A month's return is L(month end) / L(previous month end) − 1 (the first month from the base date, the current
month through the last day valued); a year's likewise from year end to year end. Contributions within one
period add up to its return. Over a year they are linked by the level at each period's start:
c_i,year = Σ_m c_i,m · L(start of m) / L(start of year), which adds up to the year's return exactly because
Σ_m L(start of m)·R_m = L(end of year) − L(start of year).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _levels(values: pd.DataFrame) -> pd.Series:
    v = values.sort_values("date")
    return pd.Series(v["index_value"].to_numpy(dtype=np.float64), index=pd.DatetimeIndex(pd.to_datetime(v["date"])))


def period_returns(values: pd.DataFrame, freq: str) -> pd.Series:
    """Returns per calendar month (`freq="M"`) or year (`"Y"`), indexed by the period's last day valued."""
    levels = _levels(values)
    if levels.empty:
        return pd.Series(dtype=np.float64)
    periods = levels.index.to_period(freq)
    last = levels.groupby(periods).tail(1)
    before = np.concatenate([[levels.iloc[0]], last.to_numpy()[:-1]])
    return pd.Series(last.to_numpy() / before - 1.0, index=last.index)


def monthly_table(values: pd.DataFrame) -> pd.DataFrame:
    """Year x month (1..12) returns, plus a `year` column with the year's return."""
    monthly = period_returns(values, "M")
    if monthly.empty:
        return pd.DataFrame()
    table = pd.DataFrame(
        {"year": monthly.index.year, "month": monthly.index.month, "ret": monthly.to_numpy()}
    ).pivot(index="year", columns="month", values="ret")
    table = table.reindex(columns=range(1, 13))
    yearly = period_returns(values, "Y")
    table["year"] = pd.Series(yearly.to_numpy(), index=yearly.index.year)
    return table


def rolling_volatility(values: pd.DataFrame, window: int = 90, *, annualization: float = 365) -> pd.Series:
    """std(daily returns over the last ``window`` days, ddof=1) · √annualization; NaN until ``window`` returns."""
    v = values.sort_values("date")
    returns = pd.Series(v["daily_return"].to_numpy(dtype=np.float64)[1:], index=pd.to_datetime(v["date"]).iloc[1:])
    return returns.rolling(window, min_periods=window).std(ddof=1) * math.sqrt(annualization)


def yearly_contributions(attribution: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """year, coin_id, contribution: monthly contributions linked by the level at each period start."""
    if attribution.empty:
        return pd.DataFrame(columns=["year", "coin_id", "contribution"])
    levels = _levels(values)
    a = attribution.copy()
    a["year"] = pd.to_datetime(a["period_end"]).dt.year
    start_level = levels.reindex(pd.to_datetime(a["period_start"])).to_numpy()
    first_start = a.groupby("year")["period_start"].transform("min")
    year_level = levels.reindex(pd.to_datetime(first_start)).to_numpy()
    a["contribution"] = a["contribution"].to_numpy() * start_level / year_level
    return a.groupby(["year", "coin_id"], as_index=False)["contribution"].sum()


def top_movers(frame: pd.DataFrame, by: str, top: int = 5) -> pd.DataFrame:
    """The ``top`` contributors (largest contributions) and detractors (most negative) per ``by`` value:
    columns by, kind (`contributor`/`detractor`), coin_id, contribution."""
    rows: list[dict[str, object]] = []
    for key, part in frame.groupby(by, sort=True):
        ordered = part.sort_values(["contribution", "coin_id"], ascending=[False, True])
        best = ordered.loc[ordered["contribution"] > 0].head(top)
        worst = ordered.loc[ordered["contribution"] < 0].sort_values("contribution").head(top)
        for kind, sel in (("contributor", best), ("detractor", worst)):
            rows.extend(
                {by: key, "kind": kind, "coin_id": c, "contribution": float(v)}
                for c, v in zip(sel["coin_id"], sel["contribution"], strict=True)
            )
    return pd.DataFrame(rows, columns=[by, "kind", "coin_id", "contribution"])


def monthly_contributions(attribution: pd.DataFrame) -> pd.DataFrame:
    """month (period end as YYYY-MM), coin_id, contribution."""
    a = attribution.assign(month=pd.to_datetime(attribution["period_end"]).dt.strftime("%Y-%m"))
    return a.groupby(["month", "coin_id"], as_index=False)["contribution"].sum()
