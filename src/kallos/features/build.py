"""`build_features`: the feature frame from a bars frame, without a store, on the path `load_features` uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kallos.errors import InputError
from kallos.features.frame import BAR_FIELDS, FeatureTimeframe, Inputs, assemble, check_horizons, check_timeframe
from kallos.features.naming import check_naming
from kallos.indicators.engine import compute_indicators
from kallos.signals.config import SignalConfig
from kallos.signals.engine import generate_signals


def _bars(bars: pd.DataFrame, tf: FeatureTimeframe) -> pd.DataFrame:
    """coin_id, date (naive UTC: the day, the week's Monday or the hour) and the bar fields, sorted."""
    if not isinstance(bars, pd.DataFrame):
        raise InputError(f"bars must be a pandas DataFrame, not {type(bars).__name__}", input="bars")
    time_col = tf.key if tf.key in bars.columns else "date"  # hourly bars: `hour` (or `date`)
    missing = [c for c in ("coin_id", time_col, "close") if c not in bars.columns]
    if missing:
        raise InputError(f"bars lack required columns {missing}", input="bars", missing=missing)
    out = pd.DataFrame({"coin_id": bars["coin_id"].astype(object).to_numpy()})
    dates = pd.to_datetime(bars[time_col])
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    dates = dates.dt.floor("h") if tf.unit == "h" else dates.dt.normalize()
    out["date"] = dates.astype("datetime64[ns]").to_numpy()
    for name in BAR_FIELDS:
        out[name] = (
            pd.to_numeric(bars[name]).to_numpy(dtype="float64") if name in bars.columns else np.full(len(out), np.nan)
        )
    return out.sort_values(["coin_id", "date"], kind="stable").reset_index(drop=True)


def daily_closes(frame: pd.DataFrame, tf: FeatureTimeframe) -> pd.DataFrame:
    """Daily closes (coin_id, date, close) read off bars of another timeframe, to drift the daily index weights:
    on 1h the close of each day's 00:00 hour (the snapshot a daily bar holds, D2), on 1w each week's close dated
    its last day (exact only on those days: pass `index_closes` for the daily weights in between)."""
    closes = frame[["coin_id", "date", "close"]]
    if tf.name == "1h":
        closes = closes.loc[closes["date"] == closes["date"].dt.normalize()]
    elif tf.close_days:
        closes = closes.assign(date=closes["date"] + pd.Timedelta(days=tf.close_days))
    return closes.reset_index(drop=True)


def build_features(
    bars: pd.DataFrame,
    *,
    naming: str = "kallos",
    horizons: Sequence[int] = (1, 7, 30),
    timeframe: str = "1d",
    columns: Sequence[str] | None = None,
    constituents: pd.DataFrame | None = None,
    alt: pd.DataFrame | None = None,
    index_closes: pd.DataFrame | None = None,
    signal_config: SignalConfig | None = None,
    close_only_approx: bool = False,
) -> pd.DataFrame:
    """The feature frame of `bars` (coin_id, date — `hour` on 1h —, close; open, high, low, volume, market_cap
    where known), bars of `timeframe`.

    Every bar is taken as final. Indicators and signals are computed with the engines the pipeline stores them
    with (signals with the timeframe's section of the config); the rank is among the coins in `bars`;
    `constituents` (selection_date, coin_id, weight) gives the index columns and `alt` (coin_id, date and the
    alternative-data columns) the `alt_*` columns, else they are empty. The index is daily: its weights drift with
    `index_closes` (coin_id, date, close: daily closes), by default the bars' own closes (see `daily_closes`).
    """
    check_naming(naming)
    tf = check_timeframe(timeframe)
    horizons = check_horizons(horizons)
    frame = _bars(bars, tf)
    indicators = compute_indicators(
        frame[["coin_id", "date", "open", "high", "low", "close", "volume"]], close_only_approx=close_only_approx
    )
    with_close = indicators.drop(columns=["ohlc_source"]).assign(close=frame["close"].to_numpy())
    signals = generate_signals(with_close, (signal_config or SignalConfig()).for_timeframe(tf.name))
    if constituents is None:
        index_closes = None
    elif index_closes is None:
        index_closes = daily_closes(frame, tf)
    else:
        index_closes = index_closes.assign(date=pd.to_datetime(index_closes["date"]).dt.normalize())
    return assemble(
        Inputs(
            bars=frame,
            indicators=indicators,
            signals=signals,
            caps=None,
            first_bar=frame.groupby("coin_id", sort=False)["date"].min(),
            constituents=constituents,
            member_closes=index_closes[["coin_id", "date", "close"]] if index_closes is not None else None,
            alt=alt,
        ),
        horizons=horizons,
        naming=naming,
        timeframe=tf.name,
        columns=columns,
    )
