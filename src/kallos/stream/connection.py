"""One socket's life: connect with the key in a header, subscribe, choose coins, read frames; reconnect on loss.

A socket is dead when it closes, errors, or says nothing for `silence_seconds` (a stalled server keeps TCP open
and answers protocol pings, so only frames count as life). It then reconnects with jittered exponential backoff
and sends the whole subscription again; replays that follow are dropped by the caller's replay filter.
Handshake answers 401/403 are final (a bad key or a plan without streaming); everything else is retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kallos.errors import ConfigError
from kallos.log import get_logger
from kallos.stream.protocol import (
    Control,
    MalformedFrame,
    PriceUpdate,
    parse_frame,
    subscribe_command,
    tokens_command,
)

log = get_logger(__name__)
# websockets logs handshake headers (the key among them) at DEBUG: its logger here never goes below INFO.
_ws_log = logging.getLogger("kallos.stream.websockets")
_ws_log.setLevel(logging.INFO)

KEY_HEADER = "x-cg-pro-api-key"


@dataclass
class SocketStats:
    frames: int = 0
    updates: int = 0
    malformed: int = 0
    connects: int = 0
    reconnects: int = 0
    silent: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)), at least `floor`."""

    base: float = 0.5
    cap: float = 30.0
    floor: float = 0.05

    def delay(self, attempt: int, rng: random.Random) -> float:
        return max(self.floor, rng.uniform(0, min(self.cap, self.base * 2**attempt)))


class SocketStream:
    """Streams `coins` over one socket until `stop` is set. `on_update` runs for every parsed update, in order."""

    def __init__(
        self,
        name: str,
        url: str,
        api_key: str,
        coins: list[str],
        on_update: Callable[[PriceUpdate], None],
        stop: asyncio.Event,
        *,
        silence_seconds: float = 60.0,
        open_timeout: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._headers = {KEY_HEADER: api_key}
        self.coins = coins
        self.on_update = on_update
        self.stop = stop
        self.silence_seconds = silence_seconds
        self.open_timeout = open_timeout
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.stats = SocketStats()
        self.subscribed: set[str] = set()
        self._last_frame = time.monotonic()

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        attempt = 0
        while not self.stop.is_set():
            try:
                async with connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=self.open_timeout,
                    max_size=2**20,
                    compression=None,
                    user_agent_header="kallos",
                    logger=_ws_log,
                ) as ws:
                    self.stats.connects += 1
                    if self.stats.connects > 1:
                        self.stats.reconnects += 1
                    attempt = 0
                    log.info("stream socket connected", extra={"socket": self.name, "coins": len(self.coins)})
                    await self._session(ws)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise ConfigError(_rejection(status, exc.response.body), setting="COINGECKO_API_KEY") from None
                self._note(f"handshake refused with HTTP {status}")
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._note(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            if self.stop.is_set():
                break
            delay = self.backoff.delay(attempt, self.rng)
            attempt += 1
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _note(self, error: str) -> None:
        self.stats.errors.append(error)
        del self.stats.errors[:-20]
        log.warning("stream socket lost; reconnecting", extra={"socket": self.name, "error": error})

    async def _session(self, ws: object) -> None:
        from websockets.asyncio.client import ClientConnection

        assert isinstance(ws, ClientConnection)
        self._last_frame = time.monotonic()
        self.subscribed.clear()
        await ws.send(subscribe_command())
        watchdog = asyncio.create_task(self._watch(ws))
        stopper = asyncio.create_task(self._close_on_stop(ws))
        try:
            async for frame in ws:
                self._last_frame = time.monotonic()
                self.stats.frames += 1
                try:
                    item = parse_frame(frame)
                except MalformedFrame as exc:
                    self.stats.malformed += 1
                    log.warning("malformed frame skipped", extra={"socket": self.name, "reason": exc.reason})
                    continue
                if type(item) is PriceUpdate:
                    self.stats.updates += 1
                    self.on_update(item)
                else:
                    assert isinstance(item, Control)
                    await self._control(ws, item)
        finally:
            watchdog.cancel()
            stopper.cancel()

    async def _control(self, ws: object, item: Control) -> None:
        if item.kind == "confirm":
            await ws.send(tokens_command(self.coins))  # type: ignore[attr-defined]
        elif item.kind == "subscribed" and item.coin_id:
            self.subscribed.add(item.coin_id)
        elif item.is_error:
            self.stats.errors.append(f"{item.code}: {item.message}")
            log.warning("stream error frame", extra={"socket": self.name, "code": item.code, "error": item.message})

    async def _watch(self, ws: object) -> None:
        """Close a socket that has said nothing for `silence_seconds` (the read loop then reconnects)."""
        tick = min(1.0, self.silence_seconds / 4)
        while True:
            await asyncio.sleep(tick)
            if time.monotonic() - self._last_frame > self.silence_seconds:
                self.stats.silent += 1
                self._note(f"silent for {self.silence_seconds:g} s")
                ws.transport.abort()  # type: ignore[attr-defined]
                return

    async def _close_on_stop(self, ws: object) -> None:
        await self.stop.wait()
        await ws.close()  # type: ignore[attr-defined]


def _rejection(status: int, body: bytes | bytearray | None) -> str:
    text = bytes(body or b"").decode("utf-8", "replace")[:200].strip()
    what = "the API key was refused" if status == 401 else "this key's plan cannot use the WebSocket API"
    return f"CoinGecko's stream answered HTTP {status}: {what}" + (f" ({text})" if text else "")
