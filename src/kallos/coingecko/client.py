"""The async CoinGecko client: one connection pool, one shared rate limiter, typed answers.

    async with CoinGeckoClient.from_settings(settings) as cg:
        rows = await cg.coins_markets(pages=2)
        chart = await cg.market_chart_range("bitcoin", start, end, interval="daily")
        cg.stats.as_dict()   # calls, retries, rate_limited, credits... for the run ledger

A call is one request sent and classified (``_send_once``: a slot from the shared rate limiter, the request, the
answer turned into JSON or a typed error of :mod:`kallos.errors`) under the retry policy of
:mod:`kallos.coingecko.retry`: only 408, 429, 5xx, timeouts, connection errors and malformed JSON are retried,
with exponential backoff and jitter; a Retry-After is honoured whatever its size up to ``retry_after_max_seconds``,
past which the call fails with :class:`RetryBudgetExceeded`. The API key travels in a header only and is
registered with the log redactor. ``clock`` and ``sleep`` (the rate limiter's and the retries') and ``transport``
(e.g. :class:`kallos.fake.transport.FakeTransport`) are injectable, so tests run without sockets or waiting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import functools
import json
import math
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

import kallos
from kallos.clock import utcnow
from kallos.coingecko import plans
from kallos.coingecko.arrays import CandleArrays, ChartArrays, parse_candles, parse_chart
from kallos.coingecko.errors import ResponseShapeError, error_for_response
from kallos.coingecko.models import (
    Candle,
    Category,
    CoinDetail,
    CoinListItem,
    KeyInfo,
    MarketChart,
    MarketRow,
    Ping,
    parse_ohlc,
    to_utc_datetime,
)
from kallos.coingecko.ratelimit import Clock, RateLimiter, Sleep
from kallos.coingecko.retry import RetryPolicy, RetrySettings
from kallos.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthError,
    BadRequestError,
    CoinGeckoError,
    ConfigError,
    RateLimitedError,
    RetryBudgetExceeded,
    TransientAPIError,
    UnresolvableHostError,
)
from kallos.log import get_logger, redact, register_secret

_orjson: Any
try:  # a declared dependency; an environment installed before it was declared still works, a little slower
    import orjson as _orjson
except ImportError:  # pragma: no cover - only in such an environment
    _orjson = None

log = get_logger(__name__)
T = TypeVar("T")
NUMERIC_ENDPOINTS = frozenset(
    {"/coins/{id}/market_chart", "/coins/{id}/market_chart/range", "/coins/{id}/ohlc", "/coins/{id}/ohlc/range"}
)
"""Endpoints whose answers are arrays of numbers, every one read as a float: decoded by orjson (docs/decisions.md#D115).
Elsewhere the standard library's reading is kept (an integer above 2**64, e.g. a token supply, stays exact)."""
FAKE_NOW_HEADER = "x-fake-now"
ResponseSink = Callable[[str, dict[str, Any], int, bytes, dt.datetime], None]
"""Called with (endpoint, params, status, body, fetched_at) for every answered request (raw archive)."""


@dataclass
class ClientStats:
    """Per-run counts for the run ledger and dry-run estimates."""

    calls: int = 0
    """HTTP requests sent (every attempt, including retries)."""
    retries: int = 0
    rate_limited: int = 0
    """429 answers received."""
    credits: int = 0
    """Credits consumed: successful (HTTP 200) calls."""
    failures: int = 0
    """Calls that ended in an error after retries (or at once)."""
    timeouts: int = 0
    limiter_wait_seconds: float = 0.0
    retry_wait_seconds: float = 0.0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    """Answers by HTTP status ("200", "429", ...); "error" counts requests that got no answer (timeouts,
    connection errors). The run ledger's telemetry, docs/decisions.md#D90."""
    bytes_received: int = 0
    """Response body bytes received (every answer, including errors)."""
    rate_limit_wait_seconds: float = 0.0
    """Seconds spent waiting on the rate limit: the limiter's pacing plus the waits 429 answers asked for."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "credits": self.credits,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "limiter_wait_seconds": round(self.limiter_wait_seconds, 3),
            "retry_wait_seconds": round(self.retry_wait_seconds, 3),
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "bytes_received": self.bytes_received,
            "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
        }


class CoinGeckoClient:
    def __init__(
        self,
        *,
        plan: str = "public",
        api_key: str | None = None,
        base_url: str | None = None,
        rate_limit_per_minute: float | None = None,
        timeout: float = 30.0,
        max_retries: int = 6,
        retry_after_max_seconds: float = 300.0,
        concurrency: int = 8,
        vs_currency: str = "usd",
        share_rate_limit: bool = True,
        ratelimit_dir: Path | None = None,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        no_retry_after_wait_seconds: float = 60.0,
        guard_seconds: float = 0.5,
        on_response: ResponseSink | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.plan = plans.get_plan(plan)
        if self.plan.key_header and not api_key:
            raise ConfigError(
                f"KALLOS_COINGECKO_PLAN={plan} needs an API key: set COINGECKO_API_KEY (or use "
                "KALLOS_COINGECKO_PLAN=public for keyless access)",
                setting="COINGECKO_API_KEY",
            )
        if api_key and not self.plan.key_header:
            log.warning(
                "COINGECKO_API_KEY is set but KALLOS_COINGECKO_PLAN=public sends no key; set "
                "KALLOS_COINGECKO_PLAN=demo or pro to use it"
            )
        register_secret(api_key)
        self._api_key = api_key if self.plan.key_header else None
        self.base_url = plans.base_url(plan, base_url)
        if "x_cg_" in self.base_url.lower():
            raise ConfigError(
                "KALLOS_COINGECKO_BASE_URL must not carry the API key; it is sent as a header",
                setting="KALLOS_COINGECKO_BASE_URL",
            )
        self._rate_from_key = rate_limit_per_minute is None and self.plan.paid
        self._rate_known = not self._rate_from_key
        rate = (
            float(rate_limit_per_minute)
            if rate_limit_per_minute is not None
            else self.plan.default_rate_per_minute
        )
        timing: dict[str, Any] = {"guard_seconds": guard_seconds}
        if clock is not None:
            timing["clock"] = clock
        if sleep is not None:
            timing["sleep"] = sleep
        if share_rate_limit:
            self.limiter = RateLimiter.shared(
                rate, host=self.base_url, api_key=self._api_key, state_dir=ratelimit_dir, **timing
            )
        else:
            self.limiter = RateLimiter(rate, **timing)
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_after_max_seconds = retry_after_max_seconds
        self.concurrency = concurrency
        self.vs_currency = vs_currency
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.no_retry_after_wait_seconds = no_retry_after_wait_seconds
        self.on_response = on_response
        self.stats = ClientStats()
        self.server_now: dt.datetime | None = None
        self.server_date: dt.datetime | None = None
        """The API's `Date` header as last seen (its clock, to the second)."""
        """The fake server's clock (`X-Fake-Now`, docs/decisions.md#D36) as last seen; None on the real API."""
        self.key_info_cache: KeyInfo | None = None
        self._host_answered = False
        """Set by the first answer: after it, a DNS failure is a transient blip and is retried."""
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._rate_lock: asyncio.Lock | None = None
        self._random = random.Random()
        self.retry = RetryPolicy(
            RetrySettings(
                max_retries=max_retries,
                retry_after_max_seconds=retry_after_max_seconds,
                backoff_base_seconds=backoff_base_seconds,
                backoff_max_seconds=backoff_max_seconds,
                no_retry_after_wait_seconds=no_retry_after_wait_seconds,
            ),
            limiter=self.limiter,
            stats=self.stats,
            sleep=sleep or asyncio.sleep,
            rng=self._random,
        )

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CoinGeckoClient:
        kwargs: dict[str, Any] = {
            "plan": settings.coingecko_plan,
            "api_key": settings.api_key,
            "base_url": settings.coingecko_base_url,
            "rate_limit_per_minute": settings.rate_limit_per_minute,
            "timeout": settings.request_timeout_seconds,
            "max_retries": settings.max_retries,
            "retry_after_max_seconds": settings.retry_after_max_seconds,
            "concurrency": settings.concurrency,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def __aenter__(self) -> CoinGeckoClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        if self._http is not None:
            return
        headers = {"accept": "application/json", "user-agent": f"kallos/{kallos.__version__} (+httpx)"}
        headers.update(self.plan.headers(self._api_key))
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            transport=self._transport,
            follow_redirects=False,
        )
        self._sem = asyncio.Semaphore(self.concurrency)
        self._rate_lock = asyncio.Lock()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def rate_limit_per_minute(self) -> float:
        return self.limiter.rate_per_minute

    # --- endpoints ------------------------------------------------------------------------------------------

    async def ping(self) -> Ping:
        data = await self._get("/ping", "/ping")
        return self._parse("/ping", None, lambda: Ping.model_validate(data))

    async def key_info(self) -> KeyInfo:
        """`/key` (pro only): the plan's rate limit and monthly credits."""
        if not self.plan.paid:
            raise AuthError(
                f"/key is a pro-only endpoint (KALLOS_COINGECKO_PLAN={self.plan.name})", endpoint="/key"
            )
        data = await self._get("/key", "/key")
        info = self._parse("/key", None, lambda: KeyInfo.model_validate(data))
        self.key_info_cache = info
        if self._rate_from_key and info.rate_limit:
            self._rate_known = True
            if info.rate_limit != self.limiter.rate_per_minute:
                self.limiter.set_rate(info.rate_limit)
                log.info("rate limit from /key: %g requests/min", info.rate_limit, extra={"plan": info.plan})
        return info

    async def coins_list(self, include_platform: bool = True, status: str = "active") -> list[CoinListItem]:
        """All coins (`status`: active, inactive or all), each marked with ``active``."""
        if status not in ("active", "inactive", "all"):
            raise BadRequestError(
                f"status must be active, inactive or all, not {status!r}", endpoint="/coins/list"
            )
        statuses = ("active", "inactive") if status == "all" else (status,)
        out: list[CoinListItem] = []
        seen: set[str] = set()
        for st in statuses:
            params = {"include_platform": _bool(include_platform), "status": st}
            data = await self._get("/coins/list", "/coins/list", params)
            rows = self._parse("/coins/list", None, functools.partial(_coin_items, data, st == "active"))
            for row in rows:
                if row.id not in seen:
                    seen.add(row.id)
                    out.append(row)
        return out

    async def coins_markets(
        self,
        ids: Sequence[str] | None = None,
        category: str | None = None,
        per_page: int = plans.MARKETS_MAX_PER_PAGE,
        pages: int | None = None,
        *,
        vs_currency: str | None = None,
        order: str = "market_cap_desc",
        price_change_percentage: Sequence[str] | None = None,
    ) -> list[MarketRow]:
        """Market rows, paginated at `per_page`, de-duplicated by id across pages (ranks shift between pages).

        Without `pages`, pages are fetched until a short page. With `ids`, ids go in groups of `per_page`.
        """
        plans.markets_pages(1, per_page)  # validates per_page
        base: dict[str, Any] = {
            "vs_currency": vs_currency or self.vs_currency,
            "order": order,
            "per_page": per_page,
        }
        if category:
            base["category"] = category
        if price_change_percentage:
            base["price_change_percentage"] = ",".join(price_change_percentage)
        seen: set[str] = set()
        out: list[MarketRow] = []

        def add(rows: Iterable[MarketRow]) -> None:
            for row in rows:
                if row.id not in seen:
                    seen.add(row.id)
                    out.append(row)

        if ids is not None and not category:
            unique = list(dict.fromkeys(i for i in ids if i))
            for start in range(0, len(unique), per_page):
                group = unique[start : start + per_page]
                add(await self._markets_page({**base, "ids": ",".join(group), "page": 1}))
            return out
        page = 1
        while pages is None or page <= pages:
            rows = await self._markets_page({**base, "page": page})
            add(rows)
            if len(rows) < per_page:
                break
            page += 1
        return out

    async def _markets_page(self, params: dict[str, Any]) -> list[MarketRow]:
        data = await self._get("/coins/markets", "/coins/markets", params)
        return self._parse("/coins/markets", None, lambda: [MarketRow.model_validate(r) for r in _list(data)])

    async def coin(
        self,
        coin_id: str,
        *,
        market_data: bool = True,
        community_data: bool = False,
        developer_data: bool = False,
    ) -> CoinDetail:
        """`/coins/{id}` with localization and tickers off (their payload is tens of KB and unused)."""
        params = {
            "localization": "false",
            "tickers": "false",
            "market_data": _bool(market_data),
            "community_data": _bool(community_data),
            "developer_data": _bool(developer_data),
            "sparkline": "false",
        }
        data = await self._get("/coins/{id}", f"/coins/{_seg(coin_id)}", params, coin_id=coin_id)
        return self._parse("/coins/{id}", coin_id, lambda: CoinDetail.model_validate(data))

    async def coin_history(self, coin_id: str, day: dt.date) -> dict[str, Any]:
        """`/coins/{id}/history?date=dd-mm-yyyy`: the coin's snapshot at 00:00 UTC of `day`, as decoded JSON
        (`market_data`, `community_data`, `developer_data`; `market_data` absent before the coin had data)."""
        params = {"date": day.strftime("%d-%m-%Y"), "localization": "false"}
        data = await self._get("/coins/{id}/history", f"/coins/{_seg(coin_id)}/history", params, coin_id=coin_id)

        def shape() -> dict[str, Any]:
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            return data

        return self._parse("/coins/{id}/history", coin_id, shape)

    async def market_chart(
        self,
        coin_id: str,
        days: int | float | str,
        *,
        vs_currency: str | None = None,
        interval: str | None = None,
        precision: str | None = None,
    ) -> MarketChart:
        data = await self._chart(coin_id, days, vs_currency, interval, precision)
        return self._parse("/coins/{id}/market_chart", coin_id, lambda: MarketChart.model_validate(data))

    async def market_chart_arrays(
        self,
        coin_id: str,
        days: int | float | str,
        *,
        vs_currency: str | None = None,
        interval: str | None = None,
        precision: str | None = None,
    ) -> ChartArrays:
        """:meth:`market_chart` read as NumPy columns, without a model per point (docs/decisions.md#D115)."""
        data = await self._chart(coin_id, days, vs_currency, interval, precision)
        return self._parse("/coins/{id}/market_chart", coin_id, lambda: parse_chart(data))

    async def _chart(
        self,
        coin_id: str,
        days: int | float | str,
        vs_currency: str | None,
        interval: str | None,
        precision: str | None,
    ) -> Any:
        params: dict[str, Any] = {"vs_currency": vs_currency or self.vs_currency, "days": _days(days)}
        if interval:
            plans.market_chart_granularity(days, interval)
            params["interval"] = interval
        if precision:
            params["precision"] = precision
        endpoint = "/coins/{id}/market_chart"
        return await self._get(endpoint, f"/coins/{_seg(coin_id)}/market_chart", params, coin_id=coin_id)

    async def market_chart_range(
        self,
        coin_id: str,
        start: dt.datetime | dt.date,
        end: dt.datetime | dt.date,
        *,
        vs_currency: str | None = None,
        interval: str | None = None,
        precision: str | None = None,
    ) -> MarketChart:
        """Points in [start, end] (a date means 00:00 UTC); ``interval="daily"`` for daily short spans."""
        data = await self._chart_range(coin_id, start, end, vs_currency, interval, precision)
        return self._parse(
            "/coins/{id}/market_chart/range", coin_id, lambda: MarketChart.model_validate(data)
        )

    async def market_chart_range_arrays(
        self,
        coin_id: str,
        start: dt.datetime | dt.date,
        end: dt.datetime | dt.date,
        *,
        vs_currency: str | None = None,
        interval: str | None = None,
        precision: str | None = None,
    ) -> ChartArrays:
        """:meth:`market_chart_range` read as NumPy columns, without a model per point (docs/decisions.md#D115):
        what ingestion uses."""
        data = await self._chart_range(coin_id, start, end, vs_currency, interval, precision)
        return self._parse("/coins/{id}/market_chart/range", coin_id, lambda: parse_chart(data))

    async def _chart_range(
        self,
        coin_id: str,
        start: dt.datetime | dt.date,
        end: dt.datetime | dt.date,
        vs_currency: str | None,
        interval: str | None,
        precision: str | None,
    ) -> Any:
        frm, to = _unix(start), _unix(end)
        if frm >= to:
            raise BadRequestError(
                "market_chart/range: start must be before end",
                endpoint="/coins/{id}/market_chart/range",
                coin_id=coin_id,
            )
        params: dict[str, Any] = {"vs_currency": vs_currency or self.vs_currency, "from": frm, "to": to}
        if interval:
            plans.market_chart_granularity(1, interval)
            params["interval"] = interval
        if precision:
            params["precision"] = precision
        endpoint = "/coins/{id}/market_chart/range"
        return await self._get(endpoint, f"/coins/{_seg(coin_id)}/market_chart/range", params, coin_id=coin_id)

    async def ohlc(
        self, coin_id: str, days: int | str, *, vs_currency: str | None = None, interval: str | None = None
    ) -> list[Candle]:
        """Candles keyed by their close time; `days` in 1/7/14/30/90/180/365/max (checked before the call)."""
        data = await self._ohlc(coin_id, days, vs_currency, interval)
        return self._parse("/coins/{id}/ohlc", coin_id, lambda: parse_ohlc(data))

    async def ohlc_arrays(
        self, coin_id: str, days: int | str, *, vs_currency: str | None = None, interval: str | None = None
    ) -> CandleArrays:
        """:meth:`ohlc` read as NumPy columns, without a model per candle (docs/decisions.md#D115)."""
        data = await self._ohlc(coin_id, days, vs_currency, interval)
        return self._parse("/coins/{id}/ohlc", coin_id, lambda: parse_candles(data))

    async def _ohlc(self, coin_id: str, days: int | str, vs_currency: str | None, interval: str | None) -> Any:
        key = plans.check_ohlc_days(days, interval)
        params: dict[str, Any] = {"vs_currency": vs_currency or self.vs_currency, "days": key}
        if interval:
            params["interval"] = interval
        return await self._get("/coins/{id}/ohlc", f"/coins/{_seg(coin_id)}/ohlc", params, coin_id=coin_id)

    async def ohlc_range(
        self,
        coin_id: str,
        start: dt.datetime | dt.date,
        end: dt.datetime | dt.date,
        interval: str = "daily",
        *,
        vs_currency: str | None = None,
    ) -> list[Candle]:
        """Paid plans only; at most 180 days (daily) or 31 days (hourly) per call — see plans.chunk_range."""
        data = await self._ohlc_range(coin_id, start, end, interval, vs_currency)
        return self._parse("/coins/{id}/ohlc/range", coin_id, lambda: parse_ohlc(data))

    async def ohlc_range_arrays(
        self,
        coin_id: str,
        start: dt.datetime | dt.date,
        end: dt.datetime | dt.date,
        interval: str = "daily",
        *,
        vs_currency: str | None = None,
    ) -> CandleArrays:
        """:meth:`ohlc_range` read as NumPy columns, without a model per candle (docs/decisions.md#D115): what
        ingestion uses."""
        data = await self._ohlc_range(coin_id, start, end, interval, vs_currency)
        return self._parse("/coins/{id}/ohlc/range", coin_id, lambda: parse_candles(data))

    async def _ohlc_range(
        self,
        coin_id: str,
        start: dt.datetime | dt.date,
        end: dt.datetime | dt.date,
        interval: str,
        vs_currency: str | None,
    ) -> Any:
        plans.check_ohlc_range(self.plan.name, plans.to_utc(start), plans.to_utc(end), interval)
        params = {
            "vs_currency": vs_currency or self.vs_currency,
            "from": _unix(start),
            "to": _unix(end),
            "interval": interval,
        }
        return await self._get(
            "/coins/{id}/ohlc/range", f"/coins/{_seg(coin_id)}/ohlc/range", params, coin_id=coin_id
        )

    async def categories(self, order: str | None = None) -> list[Category]:
        params = {"order": order} if order else None
        data = await self._get("/coins/categories", "/coins/categories", params)
        return self._parse(
            "/coins/categories", None, lambda: [Category.model_validate(r) for r in _list(data)]
        )

    # --- transport ------------------------------------------------------------------------------------------

    async def effective_rate(self) -> float:
        """Requests per minute this client will use: the configured rate, else the pro plan's `/key` rate."""
        if self._http is None:
            await self.open()
        await self._ensure_rate()
        return self.limiter.rate_per_minute

    async def _ensure_rate(self) -> None:
        """On pro without a configured rate, read the plan's rate from `/key` once (before other calls)."""
        if self._rate_known:
            return
        assert self._rate_lock is not None
        async with self._rate_lock:
            if self._rate_known:
                return
            self._rate_known = True  # one attempt only, whatever happens
            try:
                await self.key_info()
            except (AuthError, RetryBudgetExceeded):
                raise
            except CoinGeckoError as exc:
                log.warning(
                    "could not read the pro rate limit from /key (%s); using %g/min",
                    exc,
                    self.limiter.rate_per_minute,
                )

    async def _get(
        self, endpoint: str, path: str, params: dict[str, Any] | None = None, *, coin_id: str | None = None
    ) -> Any:
        """GET under the rate limiter and the retry policy; returns the decoded JSON of a 200 answer."""
        if self._http is None:
            await self.open()
        if endpoint != "/key":
            await self._ensure_rate()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return await self.retry.run(functools.partial(self._send_once, endpoint, path, clean, coin_id))

    async def _send_once(self, endpoint: str, path: str, params: dict[str, Any], coin_id: str | None) -> Any:
        """One request: wait for a send slot, send, and return the JSON of a 200 answer or raise its typed error
        (a TransientAPIError when trying again may help; the retry policy decides the rest)."""
        assert self._http is not None and self._sem is not None
        async with self._sem:
            paced = await self.limiter.acquire()
            self.stats.limiter_wait_seconds += paced
            self.stats.rate_limit_wait_seconds += paced
            self.stats.calls += 1
            self.stats.by_endpoint[endpoint] += 1
            started = time.perf_counter()
            try:
                response = await self._http.get(path, params=params)
            except httpx.TransportError as exc:
                self.stats.by_status["error"] += 1
                reason = _dns_failure(exc)
                if reason and not self._host_answered:
                    # docs/decisions.md#D54: a name that never resolved in this run is a wrong host or no
                    # network, not a blip; retrying it would only wait.
                    raise UnresolvableHostError(
                        f"cannot resolve the CoinGecko host {self._http.base_url.host!r} ({reason}); check "
                        "KALLOS_COINGECKO_BASE_URL and this machine's DNS",
                        endpoint=endpoint,
                        coin_id=coin_id,
                    ) from None
                raise self._transport_error(exc, endpoint, coin_id) from exc
        self._host_answered = True
        fetched_at = self._note_server_clock(response)
        body = response.content
        self.stats.by_status[str(response.status_code)] += 1
        self.stats.bytes_received += len(body)
        log.debug(
            "GET %s -> %s",
            endpoint,
            response.status_code,
            extra={
                "endpoint": endpoint,
                "status": response.status_code,
                "coin_id": coin_id,
                "duration_seconds": round(time.perf_counter() - started, 4),
            },
        )
        if self.on_response is not None:
            self.on_response(endpoint, dict(params), response.status_code, body, fetched_at)
        if response.status_code != 200:
            error = error_for_response(
                response.status_code,
                body,
                headers=response.headers,
                endpoint=endpoint,
                coin_id=coin_id,
                plan=self.plan.name,
            )
            if isinstance(error, RateLimitedError):
                self.stats.rate_limited += 1
            raise error
        data = self._decode(body, endpoint, coin_id)
        self.stats.credits += plans.credits_for(200)
        return data

    def _transport_error(self, exc: httpx.TransportError, endpoint: str, coin_id: str | None) -> TransientAPIError:
        """The typed error for a request that got no answer."""
        if isinstance(exc, httpx.TimeoutException):
            self.stats.timeouts += 1
            return APITimeoutError(
                f"CoinGecko did not answer within {self.timeout:g} s ({type(exc).__name__}); transient, retried",
                endpoint=endpoint,
                coin_id=coin_id,
            )
        return APIConnectionError(
            f"connection to CoinGecko failed ({type(exc).__name__}: {redact(str(exc)) or 'no detail'}); "
            "transient, retried",
            endpoint=endpoint,
            coin_id=coin_id,
        )

    @staticmethod
    def _decode(body: bytes, endpoint: str, coin_id: str | None) -> Any:
        """The JSON of a 200 answer; a malformed or truncated body is transient (the next answer may be whole).

        The chart and candle answers (all numbers, thousands of them) are read by orjson, several times faster
        (docs/decisions.md#D115); what orjson refuses and the standard library reads (NaN or Infinity literals, a
        byte-order mark, lone surrogates) is read by the standard library, so both accept the same bodies."""
        if _orjson is not None and endpoint in NUMERIC_ENDPOINTS:
            try:
                return _orjson.loads(body)
            except ValueError:
                pass
        try:
            return json.loads(body)
        except ValueError as exc:
            detail = f"{exc.msg}, char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise TransientAPIError(
                f"CoinGecko sent malformed or truncated JSON ({len(body)} bytes; {detail}); retried",
                endpoint=endpoint,
                status=200,
                coin_id=coin_id,
            ) from None

    def _note_server_clock(self, response: httpx.Response) -> dt.datetime:
        """Remember the API's clock (ingestion refuses to run ahead of it: docs/decisions.md#D55)."""
        value = response.headers.get(FAKE_NOW_HEADER)
        if value:
            try:
                self.server_now = to_utc_datetime(value)
            except ValueError:
                log.debug("unreadable %s header: %r", FAKE_NOW_HEADER, value)
        date = response.headers.get("date")
        if date:
            try:
                self.server_date = email.utils.parsedate_to_datetime(date).astimezone(dt.UTC)
            except (TypeError, ValueError):
                log.debug("unreadable Date header: %r", date)
        return utcnow()

    @property
    def api_now(self) -> dt.datetime | None:
        """The API's clock as last seen: the fake server's `X-Fake-Now`, else the HTTP `Date` header."""
        return self.server_now or self.server_date

    def _parse(self, endpoint: str, coin_id: str | None, build: Callable[[], T]) -> T:
        try:
            return build()
        except (ValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
            self.stats.failures += 1
            raise ResponseShapeError(
                f"CoinGecko answered {endpoint} with an unexpected shape: {_short_error(exc)}",
                endpoint=endpoint,
                status=200,
                coin_id=coin_id,
            ) from exc


def _coin_items(data: Any, active: bool) -> list[CoinListItem]:
    return [CoinListItem.model_validate({**row, "active": active}) for row in _list(data)]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _seg(coin_id: str) -> str:
    if not coin_id or "/" in coin_id:
        raise BadRequestError(f"invalid coin id {coin_id!r}", coin_id=coin_id)
    return quote(coin_id, safe="")


def _days(days: int | float | str) -> str:
    if str(days) == "max":
        return "max"
    value = float(days)
    if not value > 0 or math.isinf(value):
        raise BadRequestError(
            f"days must be positive or 'max', not {days!r}", endpoint="/coins/{id}/market_chart"
        )
    return str(int(value)) if value.is_integer() else repr(value)


def _unix(value: dt.datetime | dt.date) -> int:
    return int(plans.to_utc(value).timestamp())


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON array, got {type(data).__name__}")
    return data


def _short_error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _dns_failure(exc: BaseException) -> str | None:
    """The resolver's message when `exc` was caused by a failed name lookup (socket.gaierror), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current.strerror or str(current)
        current = current.__cause__ or current.__context__
    return None

