"""Benchmarks on the index's own days, and the measures that compare them (docs/decisions.md#D63).

Three benchmarks, all from the same stored market data and the same base date as the index:
- **bitcoin buy-and-hold**: level = base · close_t / close_base, a missing close carried forward;
- **equal-weight top N** and **market-cap top N (uncapped)**: the index's own selections (same N, screens,
  exclusions, rebalance dates, rank buffer), weighted 1/N or by plain market cap.

Relative measures against bitcoin, from daily simple returns r (series) and b (bitcoin):
tracking error = std(r − b, ddof=1)·√365; information ratio = mean(r − b) / std(r − b, ddof=1)·√365 (NaN when
the std is 0); beta = cov(r, b) / var(b) (ddof=1 both; NaN when var(b) is 0). Pure: frames in, frames out.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from kallos.index.build import build_index
from kallos.index.metrics import compute_metrics

BITCOIN = "bitcoin"
RELATIVE_KEYS = ("tracking_error", "information_ratio", "beta")


def buy_and_hold(
    market: pd.DataFrame, dates: pd.Series, *, coin: str = BITCOIN, base_level: float = 1000.0
) -> pd.DataFrame | None:
    """One coin held from the first of ``dates``: date, index_value, daily_return (None without its close)."""
    closes = market.loc[market["coin_id"] == coin, ["date", "close"]]
    closes = closes.loc[closes["close"] > 0].set_index(pd.to_datetime(closes["date"]))["close"].sort_index()
    days = pd.DatetimeIndex(pd.to_datetime(dates)).sort_values()
    if closes.empty or days.empty or closes.index[0] > days[0]:
        return None
    # carry the last close forward onto every index day (a missing day returns 0)
    path = closes.reindex(closes.index.union(days)).ffill().reindex(days).to_numpy(dtype=np.float64)
    level = base_level * path / path[0]
    ret = np.concatenate([[0.0], level[1:] / level[:-1] - 1.0])
    return pd.DataFrame({"date": days, "index_value": level, "daily_return": ret})


def benchmark_values(
    market: pd.DataFrame,
    *,
    exclude: Collection[str],
    base_date: Any,
    end: Any,
    build_kwargs: Mapping[str, Any],
    base_level: float = 1000.0,
) -> dict[str, pd.DataFrame]:
    """The benchmark series (date, index_value, daily_return) from ``base_date`` through ``end``."""
    kwargs = {k: v for k, v in build_kwargs.items() if k != "cost_bps"}
    kwargs["max_weight"] = 1.0  # nothing is capped in a benchmark
    n = int(kwargs.get("n_constituents", 20))
    out: dict[str, pd.DataFrame] = {}
    btc = buy_and_hold(
        market, pd.date_range(pd.Timestamp(base_date), pd.Timestamp(end), freq="D"), base_level=base_level
    )
    if btc is not None:
        out["bitcoin buy-and-hold"] = btc
    for label, weighting in ((f"equal-weight top {n}", "equal"), (f"market-cap top {n} (uncapped)", "market_cap")):
        result = build_index(
            market, exclude=exclude, start=base_date, end=end, weighting=weighting, base_level=base_level, **kwargs
        )
        out[label] = result.values[["date", "index_value", "daily_return"]]
    return out


def relative_metrics(
    returns: np.ndarray, bench: np.ndarray, *, annualization: float = 365
) -> dict[str, float]:
    """Tracking error, information ratio and beta of ``returns`` against ``bench`` (same days)."""
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(bench, dtype=np.float64)
    out = dict.fromkeys(RELATIVE_KEYS, math.nan)
    if r.size < 2:
        return out
    active = r - b
    sd = float(np.std(active, ddof=1))
    out["tracking_error"] = sd * math.sqrt(annualization)
    out["information_ratio"] = float(active.mean() / sd * math.sqrt(annualization)) if sd > 0 else math.nan
    var_b = float(np.var(b, ddof=1))
    out["beta"] = float(np.cov(r, b, ddof=1)[0, 1] / var_b) if var_b > 0 else math.nan
    return out


def compare(
    series: Mapping[str, pd.DataFrame],
    turnover: Mapping[str, pd.DataFrame] | None = None,
    *,
    against: str = "bitcoin buy-and-hold",
    annualization: float = 365,
    risk_free: float = 0.0,
) -> pd.DataFrame:
    """Metrics side by side: one column per series, on the days all series share, with tracking error,
    information ratio and beta against ``against`` (when present)."""
    common: pd.Index | None = None
    for frame in series.values():
        days = pd.Index(pd.to_datetime(frame["date"]))
        common = days if common is None else common.intersection(days)
    if common is None:
        return pd.DataFrame()
    aligned: dict[str, pd.DataFrame] = {}
    for name, frame in series.items():
        f = frame.assign(date=pd.to_datetime(frame["date"])).set_index("date").loc[common].reset_index()
        # returns re-based on the first common day, so every series starts together
        level = f["index_value"].to_numpy(dtype=np.float64)
        f["daily_return"] = np.concatenate([[0.0], level[1:] / level[:-1] - 1.0])
        aligned[name] = f
    table: dict[str, dict[str, Any]] = {}
    ref = aligned.get(against)
    for name, f in aligned.items():
        turn = turnover.get(name) if turnover else None
        m = compute_metrics(f, turn, annualization=annualization, risk_free=risk_free)
        if ref is not None:
            m.update(
                relative_metrics(
                    f["daily_return"].to_numpy()[1:], ref["daily_return"].to_numpy()[1:], annualization=annualization
                )
            )
        table[name] = m
    return pd.DataFrame(table)
