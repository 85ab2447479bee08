"""Typed views of the CoinGecko responses the pipeline reads, every timestamp an aware UTC datetime.

Models tolerate drift: unknown fields are kept (``extra="allow"``, so the raw payload can still be archived)
and documented fields may be null (market caps of 0 or null are common, see docs/decisions.md (C-API.7)).
Chart and OHLC arrays carry millisecond timestamps; ISO strings carry ``Z``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def ms_to_utc(ms: float | int) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(ms) / 1000.0, dt.UTC)


def to_utc_datetime(value: Any) -> dt.datetime | None:
    """ISO strings (with or without ``Z``/offset), UNIX seconds, or datetimes -> aware UTC; empty -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        parsed = dt.datetime.fromisoformat(text)
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    raise ValueError(f"not a timestamp: {value!r}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class _UTCFields(_Model):
    """Any field named in ``utc_fields`` is normalized to an aware UTC datetime."""

    utc_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fields = cls.utc_fields
            data = dict(data)
            for name in fields:
                if name in data:
                    data[name] = to_utc_datetime(data[name])
        return data


class Ping(_Model):
    gecko_says: str


class KeyInfo(_Model):
    """`/key` (pro only): the plan's rate limit and monthly credits."""

    plan: str | None = None
    rate_limit_request_per_minute: float | None = None
    monthly_call_credit: int | None = None
    current_total_monthly_calls: int | None = None
    current_remaining_monthly_calls: int | None = None
    api_key_rate_limit_request_per_minute: float | None = None
    api_key_monthly_call_credit: int | None = None
    api_key_current_total_monthly_calls: int | None = None

    @property
    def rate_limit(self) -> float | None:
        """The key's own limit when the plan sets one per key (2026 docs), else the plan's."""
        return self.api_key_rate_limit_request_per_minute or self.rate_limit_request_per_minute


class CoinListItem(_Model):
    id: str
    symbol: str
    name: str
    platforms: dict[str, str | None] = Field(default_factory=dict)
    active: bool | None = None
    """Which `/coins/list?status=` answered it (None when unknown)."""

    @field_validator("platforms", mode="before")
    @classmethod
    def _platforms(cls, v: Any) -> Any:
        return {} if v is None else v


class MarketRow(_UTCFields):
    """One row of `/coins/markets`. All numbers nullable (caps of 0/null are real)."""

    utc_fields: ClassVar[tuple[str, ...]] = ("ath_date", "atl_date", "last_updated")

    id: str
    symbol: str
    name: str
    image: str | None = None
    current_price: float | None = None
    market_cap: float | None = None
    market_cap_rank: int | None = None
    fully_diluted_valuation: float | None = None
    total_volume: float | None = None
    high_24h: float | None = None
    low_24h: float | None = None
    price_change_24h: float | None = None
    price_change_percentage_24h: float | None = None
    market_cap_change_24h: float | None = None
    market_cap_change_percentage_24h: float | None = None
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    ath: float | None = None
    ath_change_percentage: float | None = None
    ath_date: dt.datetime | None = None
    atl: float | None = None
    atl_change_percentage: float | None = None
    atl_date: dt.datetime | None = None
    roi: dict[str, Any] | None = None
    last_updated: dt.datetime | None = None


class CoinDetail(_UTCFields):
    """`/coins/{id}` with localization and tickers off; `market_data` kept as the raw nested dict."""

    utc_fields: ClassVar[tuple[str, ...]] = ("last_updated",)

    id: str
    symbol: str
    name: str
    web_slug: str | None = None
    asset_platform_id: str | None = None
    platforms: dict[str, str | None] = Field(default_factory=dict)
    categories: list[str] = Field(default_factory=list)
    genesis_date: dt.date | None = None
    market_cap_rank: int | None = None
    market_data: dict[str, Any] | None = None
    last_updated: dt.datetime | None = None

    @field_validator("platforms", mode="before")
    @classmethod
    def _platforms(cls, v: Any) -> Any:
        return {k: val for k, val in (v or {}).items() if k} if isinstance(v, dict) or v is None else v

    @field_validator("categories", mode="before")
    @classmethod
    def _categories(cls, v: Any) -> Any:
        return [c for c in (v or []) if c]

    @field_validator("genesis_date", mode="before")
    @classmethod
    def _genesis(cls, v: Any) -> Any:
        return v or None

    def market_value(self, field: str, vs_currency: str = "usd") -> float | None:
        """A per-currency value of `market_data` (``current_price``, ``market_cap``, ``total_volume``...)."""
        if not self.market_data:
            return None
        value = self.market_data.get(field)
        if isinstance(value, dict):
            value = value.get(vs_currency)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ChartPoint(_Model):
    ts: dt.datetime
    value: float | None


def _points(raw: Any) -> list[ChartPoint]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("expected a list of [timestamp_ms, value] pairs")
    out = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) < 2:
            raise ValueError(f"expected [timestamp_ms, value], got {pair!r}")
        value = pair[1]
        out.append(ChartPoint(ts=ms_to_utc(pair[0]), value=None if value is None else float(value)))
    return out


class MarketChart(_Model):
    """`/coins/{id}/market_chart(/range)`: three parallel series of (UTC timestamp, value)."""

    prices: list[ChartPoint] = Field(default_factory=list)
    market_caps: list[ChartPoint] = Field(default_factory=list)
    total_volumes: list[ChartPoint] = Field(default_factory=list)

    @field_validator("prices", "market_caps", "total_volumes", mode="before")
    @classmethod
    def _series(cls, v: Any) -> Any:
        if v and isinstance(v[0], ChartPoint):
            return v
        return _points(v)

    def rows(self) -> list[dict[str, Any]]:
        """Points joined on timestamp: ``{"ts", "price", "market_cap", "total_volume"}`` sorted by time."""
        merged: dict[dt.datetime, dict[str, Any]] = {}
        for name, series in (
            ("price", self.prices),
            ("market_cap", self.market_caps),
            ("total_volume", self.total_volumes),
        ):
            for p in series:
                merged.setdefault(
                    p.ts, {"ts": p.ts, "price": None, "market_cap": None, "total_volume": None}
                )[name] = p.value
        return [merged[k] for k in sorted(merged)]


class Candle(_Model):
    """One OHLC candle; ``ts`` is the candle's *close* time (UTC)."""

    ts: dt.datetime
    open: float | None
    high: float | None
    low: float | None
    close: float | None


def parse_ohlc(raw: Any) -> list[Candle]:
    if not isinstance(raw, list):
        raise ValueError("expected a list of [timestamp_ms, open, high, low, close] rows")
    candles = []
    for row in raw:
        if not isinstance(row, list | tuple) or len(row) < 5:
            raise ValueError(f"expected [timestamp_ms, open, high, low, close], got {row!r}")
        o, h, lo, c = (None if x is None else float(x) for x in row[1:5])
        candles.append(Candle(ts=ms_to_utc(row[0]), open=o, high=h, low=lo, close=c))
    return candles


class Category(_UTCFields):
    """`/coins/categories` with market data (the key is `id` here, `category_id` in the list endpoint)."""

    utc_fields: ClassVar[tuple[str, ...]] = ("updated_at",)

    id: str
    name: str
    market_cap: float | None = None
    market_cap_change_24h: float | None = None
    content: str | None = None
    top_3_coins_id: list[str] | None = None
    top_3_coins: list[str] | None = None
    volume_24h: float | None = None
    updated_at: dt.datetime | None = None
