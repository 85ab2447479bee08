"""Shared helpers of the ingestion tests: the CSV source as the docs normalize it, clients, settings."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from kallos import clock
from kallos.coingecko import CoinGeckoClient
from kallos.settings import Settings, load_settings
from tests.shared_data import shared_data

T = TypeVar("T")
CSV_FOLDERS = ("coingecko_csv_TylerIlunga", "coingecko_csv_maciejnems", "coingecko_csv_zy3110")
IDS_CSV = "coingecko_csv_ids.csv"


shared_path = shared_data


def settings_for(url: str, plan: str = "pro", **overrides: Any) -> Settings:
    key = None if plan == "public" else "test-key"
    return load_settings(
        coingecko_plan=plan,
        coingecko_api_key=key,
        coingecko_base_url=url,
        rate_limit_per_minute=1_000_000,
        max_retries=1,
        **overrides,
    )


def run_with_client(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        async with CoinGeckoClient.from_settings(
            settings, share_rate_limit=False, backoff_base_seconds=0.01
        ) as cg:
            return await fn(cg)

    return asyncio.run(go())


def pin_clock(now: dt.datetime) -> None:
    """docs/decisions.md#D36: our "now" is the fake server's."""
    clock.set_now(now)


def source_rows(last_final: dt.date) -> pd.DataFrame:
    """The CoinGecko CSV exports as the docs normalize them (docs/ingestion.md, "Normalization").

    Read independently of the fake server's loader: union of the folders per CoinGecko id (mapping file), the
    timestamp floored to its UTC date, rows without a positive price left out (quarantined), a market cap of 0
    or empty stored as NULL, the last row of a date kept, final days only.
    """
    root = shared_path()
    mapping = pd.read_csv(root / IDS_CSV, dtype=str, keep_default_na=False)
    ids = dict(zip(mapping["symbol"].str.lower(), mapping["coingecko_id"], strict=True))
    frames = []
    for folder in CSV_FOLDERS:
        for path in sorted((root / folder).glob("*-usd-max.csv")):
            symbol = path.name[: -len("-usd-max.csv")].lower()
            raw = pd.read_csv(path)
            stamp = pd.to_datetime(raw["snapped_at"].str.replace(" UTC", "", regex=False), utc=True)
            frames.append(
                pd.DataFrame(
                    {
                        "coin_id": ids[symbol],
                        "snapped_at": stamp,
                        "close": pd.to_numeric(raw["price"], errors="coerce"),
                        "market_cap": pd.to_numeric(raw["market_cap"], errors="coerce"),
                        "volume": pd.to_numeric(raw["total_volume"], errors="coerce"),
                    }
                )
            )
    allrows = pd.concat(frames, ignore_index=True)
    allrows = allrows.drop_duplicates(subset=["coin_id", "snapped_at"], keep="last")
    allrows = allrows[allrows["close"].notna() & (allrows["close"] > 0)]
    allrows["date"] = allrows["snapped_at"].dt.floor("D").dt.tz_localize(None).astype("datetime64[ns]")
    allrows = allrows.sort_values(["coin_id", "snapped_at"], kind="stable")
    allrows = allrows.drop_duplicates(subset=["coin_id", "date"], keep="last")
    allrows = allrows[allrows["date"] <= pd.Timestamp(last_final)]
    mc = allrows["market_cap"]
    allrows["market_cap"] = mc.where(mc > 0)
    vol = allrows["volume"]
    allrows["volume"] = vol.where(~(vol < 0))
    out = allrows[["coin_id", "date", "close", "market_cap", "volume"]]
    return out.sort_values(["coin_id", "date"]).reset_index(drop=True)


def assert_same_values(
    stored: pd.DataFrame, expected: pd.DataFrame, columns: list[str], rtol: float = 1e-12
) -> None:
    """Row sets equal by (coin_id, date); values equal within rtol (NULL = NULL)."""
    a = stored.sort_values(["coin_id", "date"]).reset_index(drop=True)
    b = expected.sort_values(["coin_id", "date"]).reset_index(drop=True)
    missing = b.merge(a[["coin_id", "date"]], how="left", indicator=True).query("_merge == 'left_only'")
    extra = (
        a[["coin_id", "date"]]
        .merge(b[["coin_id", "date"]], how="left", indicator=True)
        .query("_merge == 'left_only'")
    )
    assert missing.empty, f"rows missing from the store:\n{missing.head(10)}"
    assert extra.empty, f"rows in the store but not in the source:\n{extra.head(10)}"
    for col in columns:
        x = a[col].to_numpy(dtype="float64")
        y = b[col].to_numpy(dtype="float64")
        same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= rtol * np.abs(y))
        if not same.all():
            bad = np.flatnonzero(~same)[:5]
            raise AssertionError(f"column {col} differs:\n{a.iloc[bad]}\n{b.iloc[bad]}")
