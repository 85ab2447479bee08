"""What each CoinGecko plan allows, as pure functions (docs/coingecko-client.md).

Hosts, key headers, default rates, credits, the history window and the granularity rules of the chart and OHLC
endpoints live here once, so that the client, the ingestion code (which chunks requests by them) and
`kallos plan backfill` (which estimates calls and credits from them) cannot disagree. No I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from kallos.errors import BadRequestError, ConfigError, PlanLimitError
from kallos.settings import PLAN_DEFAULT_RATE

PlanName = Literal["public", "demo", "pro"]
Granularity = Literal["5m", "hourly", "daily"]

PUBLIC_HOST = "https://api.coingecko.com/api/v3"
PRO_HOST = "https://pro-api.coingecko.com/api/v3"

DAY = dt.timedelta(days=1)
DEMO_HISTORY_DAYS = 365
"""Demo and keyless keys may not reach further back than this (HTTP 401, error 10012)."""

OHLC_DAYS: tuple[str, ...] = ("1", "7", "14", "30", "90", "180", "365", "max")
"""The only `days` values `/coins/{id}/ohlc` accepts."""
OHLC_DAILY_INTERVAL_DAYS = ("1", "7", "14", "30", "90", "180")
OHLC_HOURLY_INTERVAL_DAYS = ("1", "7", "14", "30", "90")
OHLC_RANGE_MAX_SPAN: dict[str, dt.timedelta] = {
    "daily": dt.timedelta(days=180),
    "hourly": dt.timedelta(days=31),
}
"""`/coins/{id}/ohlc/range` limits per request (180 daily or 744 hourly candles)."""
CHART_HOURLY_MAX_SPAN = dt.timedelta(days=90)
"""Auto granularity of `market_chart/range` flips from hourly to daily beyond 90 days."""
CHART_INTERVAL_MAX_SPAN: dict[str, dt.timedelta] = {
    "hourly": dt.timedelta(days=100),
    "5m": dt.timedelta(days=10),
}
MARKETS_MAX_PER_PAGE = 250
PRO_DATA_START = dt.datetime(2013, 4, 28, tzinfo=dt.UTC)
"""Bitcoin's first point; nothing older exists on any plan."""


@dataclass(frozen=True)
class Plan:
    name: PlanName
    host: str
    key_header: str | None
    default_rate_per_minute: float
    history_days: int | None
    """How far back the plan may query (None: unlimited)."""
    paid: bool

    def headers(self, api_key: str | None) -> dict[str, str]:
        """The key goes in a header only, never in the query string (it would leak into logs and proxies)."""
        if self.key_header is None or not api_key:
            return {}
        return {self.key_header: api_key}


PLANS: dict[str, Plan] = {
    "public": Plan("public", PUBLIC_HOST, None, float(PLAN_DEFAULT_RATE["public"]), DEMO_HISTORY_DAYS, False),
    "demo": Plan(
        "demo", PUBLIC_HOST, "x-cg-demo-api-key", float(PLAN_DEFAULT_RATE["demo"]), DEMO_HISTORY_DAYS, False
    ),
    "pro": Plan("pro", PRO_HOST, "x-cg-pro-api-key", float(PLAN_DEFAULT_RATE["pro"]), None, True),
}


def get_plan(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ConfigError(
            f"unknown CoinGecko plan {name!r}; accepted values: public, demo, pro",
            setting="KALLOS_COINGECKO_PLAN",
        ) from None


def base_url(plan: str, override: str | None = None) -> str:
    """`KALLOS_COINGECKO_BASE_URL` wins over the plan's host (proxies, the fake server)."""
    return (override or get_plan(plan).host).rstrip("/")


def credits_for(status: int) -> int:
    """Credits a call consumes: only successful (HTTP 200) calls are charged (CoinGecko docs, 2025)."""
    return 1 if status == 200 else 0


# --- history window -----------------------------------------------------------------------------------------


def earliest_allowed(plan: str, now: dt.datetime) -> dt.datetime | None:
    """The oldest instant the plan may query, or None when unlimited (pro)."""
    days = get_plan(plan).history_days
    if days is None:
        return None
    return _utc(now) - dt.timedelta(days=days)


def clamp_range(
    plan: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime] | None:
    """Shrink [start, end] to what the plan may query; None when nothing of it is reachable.

    A day is kept of margin on demo/public so that a request built "now" is still inside the window when it is
    served (the server checks against its own clock).
    """
    start, end, now = _utc(start), _utc(end), _utc(now)
    end = min(end, now)
    floor = earliest_allowed(plan, now)
    if floor is not None:
        start = max(start, floor + DAY)
    start = max(start, PRO_DATA_START)
    return (start, end) if start < end else None


def check_days_allowed(plan: str, days: int | float | str) -> None:
    """Raise :class:`PlanLimitError` before spending a call the server would refuse with 10012."""
    limit = get_plan(plan).history_days
    if limit is None:
        return
    if str(days) == "max" or float(days) > limit:
        raise PlanLimitError(
            f"the {plan} plan only serves the past {limit} days (asked days={days}); request at most {limit} "
            "days or use a paid plan (KALLOS_COINGECKO_PLAN=pro)",
            error_code=10012,
        )


# --- granularity rules --------------------------------------------------------------------------------------


def market_chart_granularity(days: int | float | str, interval: str | None = None) -> Granularity:
    """Granularity of `/coins/{id}/market_chart`: 1 day -> 5 min, 2-90 days -> hourly, more -> daily."""
    if interval:
        return _interval(interval)
    if str(days) == "max":
        return "daily"
    d = float(days)
    if d <= 1:
        return "5m"
    if d <= 90:
        return "hourly"
    return "daily"


def market_chart_range_granularity(
    start: dt.datetime, end: dt.datetime, now: dt.datetime, interval: str | None = None
) -> Granularity:
    """Granularity of `market_chart/range`: 1 day ending now -> 5 min, other spans up to 90 days -> hourly."""
    if interval:
        return _interval(interval)
    start, end, now = _utc(start), _utc(end), _utc(now)
    span = end - start
    if span <= DAY:
        return "5m" if now - end < dt.timedelta(hours=1) else "hourly"
    if span <= CHART_HOURLY_MAX_SPAN:
        return "hourly"
    return "daily"


def ohlc_candle(days: int | str, interval: str | None = None) -> dt.timedelta:
    """Candle length of `/coins/{id}/ohlc`: 1-2 days -> 30 min, 3-30 days -> 4 h, 31+ days -> 4 days."""
    key = check_ohlc_days(days, interval)
    if interval == "daily":
        return DAY
    if interval == "hourly":
        return dt.timedelta(hours=1)
    if key == "max":
        return dt.timedelta(days=4)
    d = int(key)
    if d <= 2:
        return dt.timedelta(minutes=30)
    if d <= 30:
        return dt.timedelta(hours=4)
    return dt.timedelta(days=4)


def check_ohlc_days(days: int | str, interval: str | None = None) -> str:
    """Validate `days` (and the paid `interval`) of `/coins/{id}/ohlc` before spending a call."""
    key = str(days)
    if key not in OHLC_DAYS:
        raise BadRequestError(
            f"/coins/{{id}}/ohlc accepts days in {', '.join(OHLC_DAYS)}, not {days!r}",
            endpoint="/coins/{id}/ohlc",
        )
    if interval == "daily" and key not in OHLC_DAILY_INTERVAL_DAYS:
        raise BadRequestError(
            f"interval=daily on /coins/{{id}}/ohlc needs days in {', '.join(OHLC_DAILY_INTERVAL_DAYS)}",
            endpoint="/coins/{id}/ohlc",
        )
    if interval == "hourly" and key not in OHLC_HOURLY_INTERVAL_DAYS:
        raise BadRequestError(
            f"interval=hourly on /coins/{{id}}/ohlc needs days in {', '.join(OHLC_HOURLY_INTERVAL_DAYS)}",
            endpoint="/coins/{id}/ohlc",
        )
    if interval not in (None, "daily", "hourly"):
        raise BadRequestError(
            f"unknown ohlc interval {interval!r}; use daily or hourly", endpoint="/coins/{id}/ohlc"
        )
    return key


def check_ohlc_range(plan: str, start: dt.datetime, end: dt.datetime, interval: str) -> None:
    """`/ohlc/range` is paid-only and bounded per request (chunk with :func:`chunk_range`)."""
    if not get_plan(plan).paid:
        raise PlanLimitError(
            f"/coins/{{id}}/ohlc/range needs a paid plan (current plan: {plan}); use /coins/{{id}}/ohlc "
            "instead "
            "or set KALLOS_COINGECKO_PLAN=pro with a pro key",
            endpoint="/coins/{id}/ohlc/range",
            error_code=10005,
        )
    if interval not in OHLC_RANGE_MAX_SPAN:
        raise BadRequestError(
            f"/coins/{{id}}/ohlc/range needs interval daily or hourly, not {interval!r}",
            endpoint="/coins/{id}/ohlc/range",
        )
    span = _utc(end) - _utc(start)
    if span <= dt.timedelta(0):
        raise BadRequestError("ohlc range: start must be before end", endpoint="/coins/{id}/ohlc/range")
    if span > OHLC_RANGE_MAX_SPAN[interval]:
        raise BadRequestError(
            f"/coins/{{id}}/ohlc/range serves at most {OHLC_RANGE_MAX_SPAN[interval].days} days per request "
            f"at interval={interval} (asked {span.days} days); split it with "
            "kallos.coingecko.plans.chunk_range",
            endpoint="/coins/{id}/ohlc/range",
        )


# --- chunking and cost estimates ----------------------------------------------------------------------------


def chunk_range(
    start: dt.datetime, end: dt.datetime, max_span: dt.timedelta
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive windows of at most `max_span` covering [start, end]; adjacent windows share their boundary.

    Points on a shared boundary may come back twice: callers de-duplicate by timestamp (upsert).
    """
    start, end = _utc(start), _utc(end)
    if max_span <= dt.timedelta(0):
        raise ValueError("max_span must be positive")
    cursor = start
    while cursor < end:
        stop = min(cursor + max_span, end)
        yield cursor, stop
        cursor = stop


def chart_range_calls(start: dt.datetime, end: dt.datetime, granularity: Granularity = "daily") -> int:
    """Calls `market_chart/range` needs for [start, end] at `granularity`.

    Daily: one call whatever the span (with `interval=daily` for spans of 90 days or less).
    Hourly: windows of at most 90 days (auto granularity). 5-minute: windows of 10 days (interval=5m).
    """
    span = _utc(end) - _utc(start)
    if span <= dt.timedelta(0):
        return 0
    if granularity == "daily":
        return 1
    window = CHART_HOURLY_MAX_SPAN if granularity == "hourly" else CHART_INTERVAL_MAX_SPAN["5m"]
    return math.ceil(span / window)


def ohlc_range_calls(start: dt.datetime, end: dt.datetime, interval: str = "daily") -> int:
    span = _utc(end) - _utc(start)
    if span <= dt.timedelta(0):
        return 0
    return math.ceil(span / OHLC_RANGE_MAX_SPAN[interval])


def markets_pages(n_coins: int, per_page: int = MARKETS_MAX_PER_PAGE) -> int:
    """Pages of `/coins/markets` covering the top `n_coins` (one call each)."""
    if not 1 <= per_page <= MARKETS_MAX_PER_PAGE:
        raise BadRequestError(f"per_page must be 1..{MARKETS_MAX_PER_PAGE}", endpoint="/coins/markets")
    return math.ceil(max(n_coins, 0) / per_page)


def daily_update_calls(n_coins: int, n_exact: int, *, paid: bool) -> int:
    """A steady daily update's calls (one new final day per coin, run in the close window; docs/decisions.md#D117):
    ⌈N/250⌉ `/coins/markets` pages for the N tracked coins, plus per exact-close coin one `market_chart/range`
    call and, on paid plans, one `/ohlc/range` call. `n_exact = n_coins` is `chart` mode, 0 is `markets` mode.
    `kallos plan daily` prices the real windows (gaps, entries) coin by coin."""
    if not 0 <= n_exact <= n_coins:
        raise ValueError("n_exact must be between 0 and n_coins")
    return markets_pages(n_coins) + n_exact * (2 if paid else 1)


def minutes_for(calls: int, rate_per_minute: float) -> float:
    """Wall-clock minutes `calls` take at `rate_per_minute` (capacity-1 bucket: no bursts)."""
    if calls <= 0:
        return 0.0
    if not math.isfinite(rate_per_minute):
        return 0.0
    return calls / rate_per_minute


# --- helpers ------------------------------------------------------------------------------------------------


def _interval(interval: str) -> Granularity:
    if interval in ("5m", "hourly", "daily"):
        return interval  # type: ignore[return-value]
    raise BadRequestError(
        f"unknown interval {interval!r}; use 5m, hourly or daily", endpoint="/coins/{id}/market_chart"
    )


def _utc(value: dt.datetime | dt.date) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


to_utc = _utc
