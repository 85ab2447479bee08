"""`build_features`: the feature frame from a bars frame, without a store, on the path `load_features` uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kallos.errors import InputError
from kallos.features.frame import BAR_FIELDS, KEY, Inputs, assemble, check_horizons, check_timeframe
from kallos.features.naming import check_naming
from kallos.indicators.engine import compute_indicators
from kallos.signals.config import SignalConfig
from kallos.signals.engine import generate_signals


def _bars(bars: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(bars, pd.DataFrame):
        raise InputError(f"bars must be a pandas DataFrame, not {type(bars).__name__}", input="bars")
    missing = [c for c in (*KEY, "close") if c not in bars.columns]
    if missing:
        raise InputError(f"bars lack required columns {missing}", input="bars", missing=missing)
    out = pd.DataFrame({"coin_id": bars["coin_id"].astype(object).to_numpy()})
    dates = pd.to_datetime(bars["date"])
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    out["date"] = dates.dt.normalize().astype("datetime64[ns]").to_numpy()
    for name in BAR_FIELDS:
        out[name] = (
            pd.to_numeric(bars[name]).to_numpy(dtype="float64") if name in bars.columns else np.full(len(out), np.nan)
        )
    return out.sort_values(list(KEY), kind="stable").reset_index(drop=True)


def build_features(
    bars: pd.DataFrame,
    *,
    naming: str = "kallos",
    horizons: Sequence[int] = (1, 7, 30),
    timeframe: str = "1d",
    columns: Sequence[str] | None = None,
    constituents: pd.DataFrame | None = None,
    alt: pd.DataFrame | None = None,
    signal_config: SignalConfig | None = None,
    close_only_approx: bool = False,
) -> pd.DataFrame:
    """The feature frame of `bars` (coin_id, date, close; open, high, low, volume, market_cap where known).

    Every bar is taken as final. Indicators and signals are computed with the engines the pipeline stores them
    with; the rank is among the coins in `bars`; `constituents` (selection_date, coin_id, weight) gives the index
    columns and `alt` (coin_id, date and the alternative-data columns) the `alt_*` columns, else they are empty.
    """
    check_naming(naming)
    step = check_timeframe(timeframe)
    horizons = check_horizons(horizons)
    frame = _bars(bars)
    indicators = compute_indicators(
        frame[["coin_id", "date", "open", "high", "low", "close", "volume"]], close_only_approx=close_only_approx
    )
    with_close = indicators.drop(columns=["ohlc_source"]).assign(close=frame["close"].to_numpy())
    signals = generate_signals(with_close, signal_config)
    return assemble(
        Inputs(
            bars=frame,
            indicators=indicators,
            signals=signals,
            caps=frame[["coin_id", "date", "market_cap"]],
            first_bar=frame.groupby("coin_id", sort=False)["date"].min(),
            constituents=constituents,
            member_closes=frame[["coin_id", "date", "close"]] if constituents is not None else None,
            alt=alt,
        ),
        horizons=horizons,
        naming=naming,
        step_days=step,
        columns=columns,
    )
