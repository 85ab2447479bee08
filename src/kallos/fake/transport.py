"""The fake CoinGecko server without HTTP: an httpx transport over its request pipeline, and a clock that only
moves when someone waits (docs/decisions.md#D48).

    clock = FakeClock()
    fake = FakeCoinGecko(dataset=market, plan="pro", rate_limit_per_minute=30, clock=clock)  # not started
    async with client_for(fake, plan="pro", api_key="k", ratelimit_dir=tmp_path) as cg:
        await cg.ping()  # CoinGeckoClient(base_url=FAKE_URL, transport=FakeTransport(fake, clock),
                         #                 clock=clock.time, sleep=clock.sleep, ...)

Every request goes through :meth:`FakeCoinGecko.answer` (faults, key check, sliding-window rate limit, the
endpoint), so the client sees the same statuses, headers and bodies as over a socket. A "slow" fault longer than
the request's read timeout raises ``httpx.ReadTimeout`` after advancing the clock by the timeout; "disconnect"
raises ``httpx.RemoteProtocolError`` as httpx does when a server hangs up. Nothing waits in real time.

A few tests keep real sockets (tests/coingecko/test_cg_client.py, test_cg_rate.py): they are the check that this
transport and the HTTP server agree.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import httpx

from kallos.fake.server import PREFIX, FakeCoinGecko

if TYPE_CHECKING:
    from kallos.coingecko.client import CoinGeckoClient

__all__ = ["FAKE_URL", "FakeClock", "FakeTransport", "client_for"]

FAKE_URL = f"http://fake-coingecko.invalid{PREFIX}"
"""A base URL for clients on a FakeTransport (the host is never resolved: the transport answers)."""


class FakeClock:
    """Virtual seconds for the client's rate limiter and retries and for the fake server's clocks.

    ``await sleep(s)`` parks the caller until the clock reaches its deadline. The clock moves only when every
    other task has had its turn (a few passes of the event loop) and then straight to the earliest deadline, so
    concurrent sleepers wake in deadline order, as in real time, without the wait. ``time()`` and ``monotonic()``
    read the same virtual seconds (a FakeCoinGecko takes the clock as its ``clock``).
    """

    SETTLE_PASSES = 20  # event-loop passes the other tasks get before the clock moves on

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)
        self.slept = 0.0
        """Total seconds asked for by sleepers (what the same code would have waited in real time)."""
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        seconds = max(float(seconds), 0.0)
        self.slept += seconds
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        await wake

    async def _drive(self) -> None:
        while self._sleepers:
            for _ in range(self.SETTLE_PASSES):
                await asyncio.sleep(0)
            deadline, _, wake = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            if not wake.done():  # a cancelled sleeper is skipped
                wake.set_result(None)


class FakeTransport(httpx.AsyncBaseTransport):
    """Answers httpx requests from a :class:`FakeCoinGecko` in-process (it need not be started)."""

    def __init__(self, fake: FakeCoinGecko, clock: FakeClock | None = None, *, client: str = "127.0.0.1") -> None:
        self.fake = fake
        self.clock = clock or FakeClock()
        self.client_address = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        params = dict(parse_qsl(url.query.decode("ascii"), keep_blank_values=True))
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = self.fake.answer(
            unquote(url.path), params, headers, self.client_address, method=request.method, sleep=_no_wait
        )
        if answer.dropped:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if answer.delay:
            read_timeout = (request.extensions.get("timeout") or {}).get("read")
            if read_timeout is not None and answer.delay > read_timeout:
                await self.clock.sleep(read_timeout)
                raise httpx.ReadTimeout("timed out", request=request)
            await self.clock.sleep(answer.delay)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.payload, request=request)


def _no_wait(seconds: float) -> None:
    return None


def client_for(fake: FakeCoinGecko, clock: FakeClock | None = None, **options: Any) -> CoinGeckoClient:
    """A CoinGeckoClient answered in-process by `fake` on `clock` (the fake's own clock when it is a FakeClock,
    else a new one): no socket, no real waiting. `options` go to CoinGeckoClient (plan, api_key, ...)."""
    from kallos.coingecko.client import CoinGeckoClient

    if clock is None:
        clock = fake.clock if isinstance(fake.clock, FakeClock) else FakeClock()
    options.setdefault("base_url", FAKE_URL)
    return CoinGeckoClient(transport=FakeTransport(fake, clock), clock=clock.time, sleep=clock.sleep, **options)
