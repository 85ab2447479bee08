"""Helpers of the indicator tests: real bars (../shared/data), and the tolerance of docs/decisions.md#D31."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tests.shared_data import SHARED_DATA, shared_data  # noqa: F401 - re-exported


def load_exchange_file(path: Path) -> pd.DataFrame:
    """One CryptoDataDownload daily file as bars (volume in the base currency), known bad rows dropped.

    Dropped, as SOURCES.md documents them: zero-filled rows before listing, repeated dates (last wins), and
    the partial last day. Rows whose close lies outside [low, high] are dropped too (the engine rejects them).
    """
    raw = pd.read_csv(path)
    base = str(raw["symbol"].iloc[0]).split("/")[0]
    volume_col = next(c for c in raw.columns if re.fullmatch(rf"Volume {base}", c, flags=re.IGNORECASE))
    bars = pd.DataFrame(
        {
            "date": pd.to_datetime(raw["date"]).dt.normalize(),
            "open": raw["open"],
            "high": raw["high"],
            "low": raw["low"],
            "close": raw["close"],
            "volume": raw[volume_col],
        }
    )
    bars = bars.sort_values("date", kind="stable").iloc[:-1]  # the newest row is a partial day
    bars = bars.drop_duplicates("date", keep="last")
    ok = (bars[["open", "high", "low", "close"]] > 0).all(axis=1)
    ok &= (bars["low"] <= bars["close"]) & (bars["close"] <= bars["high"]) & (bars["low"] <= bars["high"])
    return bars[ok].reset_index(drop=True)


def load_exchange_panel() -> pd.DataFrame:
    """All 23 exchange files as one panel, coin_id = file stem (e.g. Bitstamp_BTCUSD_d)."""
    folder = shared_data("cryptodatadownload_janironn")
    frames = [load_exchange_file(p).assign(coin_id=p.stem) for p in sorted(folder.glob("*.csv"))]
    return pd.concat(frames, ignore_index=True)


def load_coingecko_panel() -> pd.DataFrame:
    """The CoinGecko CSV exports (union of the three folders per coin): close-only bars with volume."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for folder in sorted(shared_data().glob("coingecko_csv_*")):
        if not folder.is_dir():
            continue
        for path in folder.glob("*-usd-max.csv"):
            coin = path.name.lower().removesuffix("-usd-max.csv")
            raw = pd.read_csv(path)
            frames.setdefault(coin, []).append(
                pd.DataFrame(
                    {
                        "date": pd.to_datetime(raw["snapped_at"].str.replace(" UTC", "")).dt.floor("D"),
                        "close": raw["price"],
                        "volume": raw["total_volume"],
                    }
                )
            )
    out = []
    for coin, parts in sorted(frames.items()):
        bars = pd.concat(parts).drop_duplicates("date", keep="last").sort_values("date")
        bars = bars[bars["close"] > 0]
        out.append(bars.assign(coin_id=coin, open=np.nan, high=np.nan, low=np.nan))
    return pd.concat(out, ignore_index=True)[["coin_id", "date", "open", "high", "low", "close", "volume"]]


def assert_matches(actual: np.ndarray, expected: np.ndarray, rtol: float, label: str) -> None:
    """docs/decisions.md#D31: |a - b| <= rtol (|b| + s), s = mean |b| of the column for this coin; NaN at NaN."""
    actual = np.asarray(actual, dtype="float64")
    expected = np.asarray(expected, dtype="float64")
    nan_a, nan_b = np.isnan(actual), np.isnan(expected)
    if not np.array_equal(nan_a, nan_b):
        i = int(np.flatnonzero(nan_a != nan_b)[0])
        raise AssertionError(f"{label}: NaN pattern differs first at bar {i} ({actual[i]} vs {expected[i]})")
    if nan_b.all():
        return
    a, b = actual[~nan_b], expected[~nan_b]
    s = float(np.mean(np.abs(b)))
    err = np.abs(a - b) - rtol * (np.abs(b) + s)
    if (err > 0).any():
        i = int(np.argmax(err))
        raise AssertionError(f"{label}: {a[i]!r} vs {b[i]!r} beyond rtol {rtol} with s = {s!r}")
