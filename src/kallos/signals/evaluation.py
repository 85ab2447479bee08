"""Signal evaluation: what followed each signal, next to what followed any day of the same coins.

Forward returns count calendar days (docs/decisions.md#D4): the h-day return of day t is close(t + h days) /
close(t) - 1, and it is missing (not counted) when either close is not stored. A signal "hits" when the return
has the signal's direction (> 0 for +1, < 0 for -1). Composite rows enter as `composite_buy` (+1) and
`composite_sell` (-1); holds are not signals.

The baseline is the coins' unconditional forward return over the evaluated days: for every coin, the mean
h-day return (and the share of days moving in the signal's direction) over all its days in [start, end],
averaged with the weights of the signal's occurrences per coin. A signal whose mean return merely matches a
rising coin's average day shows an excess return near zero."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kallos.errors import DataValidationError

REPORT_COLUMNS: tuple[str, ...] = (
    "signal",
    "direction",
    "horizon",
    "occurrences",
    "count",
    "hit_rate",
    "mean_return",
    "median_return",
    "base_mean_return",
    "base_hit_rate",
    "excess_mean_return",
)


def parse_horizons(text: str | Sequence[int]) -> tuple[int, ...]:
    """`"1,7,30"` -> (1, 7, 30); each a positive whole number of days, order kept, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: dict[int, None] = {}
    for item in items:
        raw = str(item).strip()
        if not raw:
            continue
        try:
            h = int(raw)
        except ValueError:
            raise DataValidationError("horizon is not a whole number of days", horizon=raw) from None
        if h < 1 or h > 3650:
            raise DataValidationError("horizon must be between 1 and 3650 days", horizon=h)
        out[h] = None
    if not out:
        raise DataValidationError("no horizon given", horizons=str(text))
    return tuple(out)


def _events(signals: pd.DataFrame) -> pd.DataFrame:
    s = signals.loc[:, ["coin_id", "date", "signal", "direction", "action"]].copy()
    comp = s["signal"] == "composite"
    s.loc[comp, "signal"] = "composite_" + s.loc[comp, "action"].astype(str)
    s.loc[comp & (s["action"] == "buy"), "direction"] = 1
    s.loc[comp & (s["action"] == "sell"), "direction"] = -1
    s = s.loc[~comp | s["action"].isin(["buy", "sell"])]
    s["direction"] = s["direction"].astype("int64")
    s["date"] = pd.to_datetime(s["date"]).astype("datetime64[ns]")
    return s.drop(columns="action")


def forward_returns(closes: pd.DataFrame, horizons: Sequence[int]) -> pd.DataFrame:
    """(coin_id, date, close) -> the same rows with one `fwd_<h>` column per horizon (calendar days)."""
    c = closes.loc[:, ["coin_id", "date", "close"]].copy()
    c["date"] = pd.to_datetime(c["date"]).astype("datetime64[ns]")
    c = c.drop_duplicates(["coin_id", "date"], keep="last")
    for h in horizons:
        later = c.loc[:, ["coin_id", "date", "close"]].rename(columns={"close": "_later"})
        later["date"] = later["date"] - pd.Timedelta(days=h)
        c = c.merge(later, on=["coin_id", "date"], how="left")
        c[f"fwd_{h}"] = c["_later"] / c["close"] - 1.0
        c = c.drop(columns="_later")
    return c


def evaluate_signals(
    signals: pd.DataFrame,
    closes: pd.DataFrame,
    horizons: Sequence[int] = (1, 7, 30),
    *,
    start: object = None,
    end: object = None,
) -> pd.DataFrame:
    """One row per (signal, direction, horizon); see the module docstring for the columns' meaning."""
    horizons = parse_horizons(horizons)
    ev = _events(signals)
    if start is not None:
        ev = ev.loc[ev["date"] >= pd.Timestamp(start)]
    if end is not None:
        ev = ev.loc[ev["date"] <= pd.Timestamp(end)]
    if ev.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REPORT_COLUMNS})
    lo = pd.Timestamp(start) if start is not None else ev["date"].min()
    hi = pd.Timestamp(end) if end is not None else ev["date"].max()

    fwd = forward_returns(closes, horizons)
    days = fwd.loc[(fwd["date"] >= lo) & (fwd["date"] <= hi)]
    ev = ev.merge(fwd.drop(columns="close"), on=["coin_id", "date"], how="left")

    rows = []
    for (sig, direction), grp in ev.groupby(["signal", "direction"], sort=True):
        for h in horizons:
            col = f"fwd_{h}"
            r = grp[col].dropna()
            # Baseline: each coin's unconditional mean over the evaluated days, weighted by its occurrences.
            coin_days = days.loc[
                days["coin_id"].isin(grp.loc[grp[col].notna(), "coin_id"].unique()), ["coin_id", col]
            ]
            coin_days = coin_days.dropna()
            per_coin = coin_days.groupby("coin_id")[col].agg(
                base_mean="mean", base_hit=lambda x, d=direction: float((np.sign(x) == d).mean())
            )
            weights = grp.loc[grp[col].notna()].groupby("coin_id").size()
            per_coin = per_coin.join(weights.rename("n"), how="inner")
            if len(r) and per_coin["n"].sum() > 0:
                base_mean = float(np.average(per_coin["base_mean"], weights=per_coin["n"]))
                base_hit = float(np.average(per_coin["base_hit"], weights=per_coin["n"]))
            else:
                base_mean = base_hit = np.nan
            mean = float(r.mean()) if len(r) else np.nan
            rows.append(
                {
                    "signal": sig,
                    "direction": int(direction),
                    "horizon": int(h),
                    "occurrences": int(len(grp)),
                    "count": int(len(r)),
                    "hit_rate": float((np.sign(r) == direction).mean()) if len(r) else np.nan,
                    "mean_return": mean,
                    "median_return": float(r.median()) if len(r) else np.nan,
                    "base_mean_return": base_mean,
                    "base_hit_rate": base_hit,
                    "excess_mean_return": mean - base_mean,
                }
            )
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
