"""Pure transforms from typed CoinGecko answers to frames the validation and the store understand. No I/O.

A chart's points keep their real timestamp (`snapped_at`); the date they belong to is their UTC day
(docs/decisions.md#D2). Points that are not final yet (the trailing "now" point, anything on or after the first
non-final day) are split off as snapshots: `daily_market_data` holds final days only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kallos.coingecko.arrays import CandleArrays, ChartArrays
from kallos.coingecko.models import Candle, CoinDetail, CoinListItem, MarketChart, MarketRow

CHART_COLUMNS = ["snapped_at", "close", "market_cap", "volume"]
CANDLE_COLUMNS = ["snapped_at", "open", "high", "low", "candle_close"]
SNAPSHOT_COLUMNS = ["coin_id", "fetched_at", "price", "market_cap", "volume", "source"]


def chart_frame(chart: ChartArrays | MarketChart) -> pd.DataFrame:
    """`market_chart(/range)` -> one row per timestamp: snapped_at (UTC), close, market_cap, volume.

    From :class:`ChartArrays` (what ingestion fetches) the columns are taken as they are; a :class:`MarketChart`
    gives the same frame, point by point."""
    if isinstance(chart, ChartArrays) and len(chart):
        return pd.DataFrame(
            {
                "snapped_at": pd.DatetimeIndex(chart.ts).tz_localize("UTC"),
                "close": chart.price,
                "market_cap": chart.market_cap,
                "volume": chart.total_volume,
            }
        )
    rows = chart.rows() if isinstance(chart, MarketChart) else []
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in CHART_COLUMNS}).astype(
            {"snapped_at": "datetime64[ns, UTC]"}
        )
    frame = pd.DataFrame(rows).rename(
        columns={"ts": "snapped_at", "price": "close", "total_volume": "volume"}
    )
    frame["snapped_at"] = pd.to_datetime(frame["snapped_at"], utc=True)
    for c in ("close", "market_cap", "volume"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame[CHART_COLUMNS]


def split_final(frame: pd.DataFrame, last_final_day: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of final days, provisional rows).

    The close of the last final day D is its 00:00 point; anything stamped after D 00:00 (the trailing "now" point
    of a chart, today's values) is provisional. Rows with an unreadable timestamp stay with the final rows so
    validation can quarantine them.
    """
    ts = pd.to_datetime(frame["snapped_at"], utc=True, errors="coerce")
    cutoff = pd.Timestamp(last_final_day).tz_localize("UTC")
    provisional = ts.notna() & (ts > cutoff)
    return frame[~provisional].reset_index(drop=True), frame[provisional].reset_index(drop=True)


def snapshots_from_chart(coin_id: str, provisional: pd.DataFrame, source: str) -> pd.DataFrame:
    """The provisional chart points (normally the trailing "now" point) as `market_snapshots` rows."""
    if provisional.empty:
        return pd.DataFrame(columns=SNAPSHOT_COLUMNS)
    out = pd.DataFrame(
        {
            "coin_id": coin_id,
            "fetched_at": pd.to_datetime(provisional["snapped_at"], utc=True),
            "price": provisional["close"].to_numpy(),
            "market_cap": provisional["market_cap"].to_numpy(),
            "volume": provisional["volume"].to_numpy(),
            "source": source,
        }
    )
    return _clean_snapshot(out)


def candles_frame(candles: CandleArrays | Sequence[Candle]) -> pd.DataFrame:
    """OHLC candles keyed by their close time; the day of a candle is the UTC day of its close (docs/decisions.md#D2).
    """
    if not len(candles):
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in CANDLE_COLUMNS}).astype(
            {"snapped_at": "datetime64[ns, UTC]"}
        )
    if isinstance(candles, CandleArrays):
        return pd.DataFrame(
            {
                "snapped_at": pd.DatetimeIndex(candles.ts).tz_localize("UTC"),
                "open": candles.open,
                "high": candles.high,
                "low": candles.low,
                "candle_close": candles.close,
            }
        )
    frame = pd.DataFrame(
        {
            "snapped_at": pd.to_datetime([c.ts for c in candles], utc=True),
            "open": [c.open for c in candles],
            "high": [c.high for c in candles],
            "low": [c.low for c in candles],
            "candle_close": [c.close for c in candles],
        }
    )
    for c in ("open", "high", "low", "candle_close"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame


def daily_candles(frame: pd.DataFrame) -> pd.DataFrame:
    """Candles -> one candle per UTC day of close (`date`); sub-daily candles are aggregated.

    Only candles closing exactly at 00:00 can be daily candles as they are; shorter ones (4 h from `/ohlc` on free
    plans) closing within (D-1 00:00, D 00:00] are combined into day D: first open, max high, min low,
    last close.
    Days whose intraday candles do not reach D 00:00 are incomplete and dropped here (never invented).
    """
    if frame.empty:
        return pd.DataFrame(columns=["date", "open", "high", "low", "candle_close"])
    f = frame.sort_values("snapped_at").copy()
    ts = pd.to_datetime(f["snapped_at"], utc=True)
    day_values = ts.dt.floor("D").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    if (ts.dt.floor("D") == ts).all() and (np.diff(day_values) > np.timedelta64(0, "ns")).all():
        # Daily candles as `ohlc/range` serves them: each closes one day at 00:00, one candle a day. The grouping
        # below would give each day its single candle; skip it (a backfill has thousands of these a coin).
        return pd.DataFrame(
            {
                "date": day_values,
                "open": f["open"].to_numpy(),
                "high": f["high"].to_numpy(),
                "low": f["low"].to_numpy(),
                "candle_close": f["candle_close"].to_numpy(),
            }
        )
    # A candle closing at D 00:00 belongs to day D; one closing at D 04:00 belongs to D+1's candle.
    day = ts.dt.ceil("D").dt.tz_localize(None)
    f["date"] = day.astype("datetime64[ns]")
    f["_closes_day"] = (ts == ts.dt.floor("D")).to_numpy()
    g = f.groupby("date", sort=True)
    out = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "candle_close": g["candle_close"].last(),
            "complete": g["_closes_day"].any(),
        }
    ).reset_index()
    out = out[out["complete"]].drop(columns=["complete"])
    # A day built from sub-daily candles also needs its first candle to start at D-1 00:00; the first day of a
    # series often lacks it, so keep only days whose neighbour before also closes a day (or single daily
    # candles).
    spacing = ts.diff().median() if len(ts) > 1 else pd.Timedelta(days=1)
    if pd.notna(spacing) and spacing < pd.Timedelta(days=1):
        counts = g.size().reindex(out["date"]).to_numpy()
        expected = int(round(pd.Timedelta(days=1) / spacing))
        out = out[counts >= expected]
    return out.reset_index(drop=True)


def attach_candles(chart_rows: pd.DataFrame, candles: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Put daily candles' open/high/low next to the chart rows of the same day; return (frame,
    unmatched candles).

    The chart close stays the bar's close: candles only bring open, high and low (docs/decisions.md#D2 and D7).
    """
    frame = chart_rows.copy()
    if candles.empty:
        for c in ("open", "high", "low"):
            frame[c] = np.nan
        return frame, 0
    ts = pd.to_datetime(frame["snapped_at"], utc=True, errors="coerce")
    rows_day = ts.dt.floor("D").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    candle_day = pd.to_datetime(candles["date"]).to_numpy(dtype="datetime64[ns]")
    # A day's last candle wins: the first occurrence of each day in the reversed candles.
    days, first_reversed = np.unique(candle_day[::-1], return_index=True)
    last = candle_day.size - 1 - first_reversed
    at = np.minimum(np.searchsorted(days, rows_day), max(days.size - 1, 0))
    found = (days[at] == rows_day) if days.size else np.zeros(len(frame), dtype=bool)  # NaT matches nothing
    for c in ("open", "high", "low"):
        column = np.full(len(frame), np.nan)
        column[found] = candles[c].to_numpy(dtype="float64")[last][at[found]]
        frame[c] = column
    unmatched = int((~np.isin(candle_day, rows_day)).sum())
    return frame, unmatched


def markets_frame(rows: Iterable[MarketRow], fetched_at: dt.datetime) -> pd.DataFrame:
    """`/coins/markets` rows -> coin_id, snapped_at (its `last_updated`, else the fetch time), price, caps,
    rank.
    """
    recs = []
    for r in rows:
        recs.append(
            {
                "coin_id": r.id,
                "symbol": r.symbol,
                "name": r.name,
                "snapped_at": r.last_updated or fetched_at,
                "close": r.current_price,
                "market_cap": r.market_cap,
                "volume": r.total_volume,
                "market_cap_rank": r.market_cap_rank,
            }
        )
    frame = pd.DataFrame(
        recs,
        columns=[
            "coin_id",
            "symbol",
            "name",
            "snapped_at",
            "close",
            "market_cap",
            "volume",
            "market_cap_rank",
        ],
    )
    if not frame.empty:
        frame["snapped_at"] = pd.to_datetime(frame["snapped_at"], utc=True)
        for c in ("close", "market_cap", "volume"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame


def snapshots_from_markets(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=SNAPSHOT_COLUMNS)
    out = pd.DataFrame(
        {
            "coin_id": frame["coin_id"],
            "fetched_at": frame["snapped_at"],
            "price": frame["close"],
            "market_cap": frame["market_cap"],
            "volume": frame["volume"],
            "source": "markets",
        }
    )
    return _clean_snapshot(out)


def _clean_snapshot(out: pd.DataFrame) -> pd.DataFrame:
    """Snapshots are raw observations but the store refuses non-finite numbers: unknown becomes NULL."""
    for c in ("price", "market_cap", "volume"):
        v = pd.to_numeric(out[c], errors="coerce").astype("float64")
        out[c] = v.where(np.isfinite(v) & ~((c == "market_cap") & (v <= 0)))
    return out.drop_duplicates(subset=["coin_id", "fetched_at"], keep="last").reset_index(drop=True)


def coins_list_frame(items: Iterable[CoinListItem], seen_at: dt.datetime) -> pd.DataFrame:
    """`/coins/list` (both statuses) -> `coins` rows: id, symbol, name, status, platforms JSON, first/last
    seen.
    """
    recs = []
    for it in items:
        platforms = {k: v for k, v in (it.platforms or {}).items() if k}
        recs.append(
            {
                "coingecko_id": it.id,
                "symbol": it.symbol or "",
                "name": it.name or it.id,
                "status": "inactive" if it.active is False else "active",
                "platforms": json.dumps(platforms, sort_keys=True),
                "first_seen": seen_at,
                "last_seen": seen_at,
            }
        )
    frame = pd.DataFrame(
        recs, columns=["coingecko_id", "symbol", "name", "status", "platforms", "first_seen", "last_seen"]
    )
    # An id listed as both active and inactive is active (the list can change between the two calls).
    frame["_rank"] = (frame["status"] == "active").astype(int)
    frame = frame.sort_values(["coingecko_id", "_rank"]).drop_duplicates("coingecko_id", keep="last")
    frame = frame.drop(columns=["_rank"])
    return frame.reset_index(drop=True)


def _json_or_none(value: Any) -> str | None:
    """JSON of a dict with some non-empty value; None where CoinGecko no longer supplies the data."""
    if not isinstance(value, dict):
        return None

    def empty(v: Any) -> bool:
        if v is None or v == "" or v == [] or v == {}:
            return True
        if isinstance(v, dict):
            return all(empty(x) for x in v.values())
        if isinstance(v, list):
            return all(empty(x) for x in v)
        return False

    if empty(value):
        return None
    return json.dumps(value, sort_keys=True, default=str)


DEAD_COMMUNITY_FIELDS = frozenset(
    {
        "twitter_followers",
        "reddit_average_posts_48h",
        "reddit_average_comments_48h",
        "reddit_subscribers",
        "reddit_accounts_active_48h",
    }
)
"""Fields CoinGecko no longer supplies (Twitter since 2025-05-15, Reddit): their 0 or null is not data."""


def detail_row(detail: CoinDetail, updated_at: dt.datetime) -> dict[str, Any]:
    """`/coins/{id}` -> the `coins` columns it refreshes (NULL where the payload has nothing)."""
    extra = detail.model_extra or {}
    description = extra.get("description")
    if isinstance(description, dict):
        description = description.get("en") or None
    links = extra.get("links")
    links_clean = None
    if isinstance(links, dict):
        pruned: dict[str, Any] = {}
        for k, v in links.items():
            if isinstance(v, list):
                v = [x for x in v if x]
            elif isinstance(v, dict):
                v = {kk: [x for x in vv if x] if isinstance(vv, list) else vv for kk, vv in v.items()}
            pruned[k] = v
        links_clean = _json_or_none(pruned)
    platforms = {k: v for k, v in (detail.platforms or {}).items() if k}
    return {
        "coingecko_id": detail.id,
        "symbol": detail.symbol,
        "name": detail.name,
        "description": description or None,
        "links": links_clean,
        "genesis_date": pd.Timestamp(detail.genesis_date) if detail.genesis_date else None,
        "hashing_algorithm": extra.get("hashing_algorithm") or None,
        "platforms": json.dumps(platforms, sort_keys=True),
        "community_data": _json_or_none(
            {k: v for k, v in (extra.get("community_data") or {}).items() if k not in DEAD_COMMUNITY_FIELDS}
            if isinstance(extra.get("community_data"), dict)
            else None
        ),
        "developer_data": _json_or_none(extra.get("developer_data")),
        "market_cap_rank": detail.market_cap_rank,
        "details_updated_at": updated_at,
    }


def slug(name: str) -> str:
    """CoinGecko's category id from a category name when its id is unknown: "Layer 1 (L1)" -> "layer-1-l1"."""
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in name)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")
