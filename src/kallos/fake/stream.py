"""The fake CoinGecko WebSocket stream (CGSimplePrice) on loopback, with fault injection.

It speaks the protocol of docs/decisions.md#D100: a welcome, `confirm_subscription`, a 2000 code per coin,
update frames with keys in random order (and occasional nulls), `ping` frames, and error codes 4004 (unknown coin)
and 4029 (over 100 coins on one socket). Handshakes without a valid key answer HTTP 401, keys of plans that cannot
stream 403, an eleventh socket for one key 429.

Every update has a sequence number per coin; the server remembers, per key and coin, the next update to deliver,
and on a new `set_tokens` it first replays the last `replay` updates (as a real server re-sends current prices after
a reconnect). So nothing is lost across a reconnect and replays really happen: `sent()` lists every distinct update
delivered, which tests compare with what the store holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kallos.fake.dataset import Dataset, datetime_to_ms
from kallos.log import get_logger
from kallos.stream.protocol import IDENTIFIER

log = get_logger(__name__)
_ws_log = logging.getLogger("kallos.fake.stream.websockets")
_ws_log.setLevel(logging.INFO)  # never log handshake headers (keys) at DEBUG

UNKNOWN_COIN = 4004
OVER_LIMIT = 4029
MALFORMED = (
    '{"c":"C1","i":',
    "not json at all",
    '{"c":"C1","p":1.5,"t":1}',
    '{"c":"C1","i":"x","p":"cheap","t":1}',
    "[1,2,3]",
)


@dataclass
class StreamFaults:
    """Faults on the update path. `drop_after`/`stall_after` count updates on one socket and fire `times` times in
    the server's life; `*_every` fire on every Nth update of a socket."""

    drop_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 5.0
    malformed_every: int | None = None
    duplicate_every: int | None = None
    null_every: int | None = None
    times: int = 1


class _Coin:
    """One coin's update sequence, generated on demand from the simulated market's price at the fake's now."""

    def __init__(self, coin_id: str, price: float, market_cap: float | None, volume: float, seed: int) -> None:
        self.coin_id = coin_id
        self.base_price = price
        self.price = price
        self.supply = (market_cap / price) if market_cap and price else None
        self.volume = volume
        self.rng = random.Random(seed)
        self.updates: list[tuple[int, float, float, float | None, float]] = []
        self.offset = 0  # sequence number of updates[0] (older ones are forgotten when not recording)

    def get(self, k: int) -> tuple[int, float, float, float | None, float]:
        while self.offset + len(self.updates) <= k:
            self.price *= math.exp(self.rng.gauss(0.0, 5e-4))
            last = self.updates[-1][0] if self.updates else 0
            t_us = max(time.time_ns() // 1000, last + 1)
            mcap = self.price * self.supply if self.supply else None
            self.volume *= math.exp(self.rng.gauss(0.0, 1e-3))
            pp = (self.price / self.base_price - 1.0) * 100.0
            self.updates.append((t_us, self.price, pp, mcap, self.volume))
        return self.updates[k - self.offset]

    def forget_before(self, k: int) -> None:
        drop = k - self.offset
        if drop > 0:
            del self.updates[:drop]
            self.offset = k


class FakeStream:
    """``FakeStream(dataset, plan="pro", rate=10.0, replay=2, faults=None)``; ``start()``, ``url``, ``sent()``,
    ``stop()``, or a context manager. ``rate`` is updates per second per socket (0: as fast as it can)."""

    def __init__(
        self,
        dataset: Dataset | None = None,
        plan: str = "pro",
        *,
        api_key: str | None = None,
        keys: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float = 10.0,
        replay: int = 2,
        ping_interval: float = 3.0,
        faults: StreamFaults | None = None,
        max_sockets: int = 10,
        per_socket: int = 100,
        record: bool = True,
        seed: int = 11,
    ) -> None:
        if dataset is None:
            from kallos.fake.testing import small_market

            dataset = small_market()
        self.dataset = dataset
        self.plan = plan
        self.api_key = api_key
        self.keys = dict(keys or {})
        self.host = host
        self.port = port
        self.rate = rate
        self.replay = replay
        self.ping_interval = ping_interval
        self.faults = faults or StreamFaults()
        self.max_sockets = max_sockets
        self.per_socket = per_socket
        self.record = record
        self._rng = random.Random(seed)
        self._templates = _templates(self._rng)
        now_ms = datetime_to_ms(dataset.now)
        self._coins: dict[str, _Coin] = {}
        for i, info in enumerate(dataset.coins):
            if not dataset.is_listed(i, now_ms):
                continue
            p, m, v = (float(x[0]) for x in dataset.values_at(i, _ms_array(now_ms)))
            if not (p > 0):
                continue
            self._coins[info.id] = _Coin(info.id, p, m if m > 0 else None, max(v, 0.0), seed * 1_000_003 + i)
        self._cursor: dict[tuple[str, str], int] = {}
        self._open: dict[str, int] = {}
        self._fired = {"drop": 0, "stall": 0}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._stopping: asyncio.Event | None = None
        self.connections = 0
        self.updates_sent = 0
        self._paused = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeStream:
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open_server())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._close_server())
            loop.close()

        self._thread = threading.Thread(target=main, name="fake-stream", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    async def _open_server(self) -> None:
        from websockets.asyncio.server import serve

        self._stopping = asyncio.Event()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_handshake,
            compression=None,
            max_size=2**20,
            logger=_ws_log,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_server(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        self._server.close()
        await self._server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop = None

    def __enter__(self) -> FakeStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def coins(self) -> list[str]:
        """The coins it streams: those listed at the dataset's now."""
        return list(self._coins)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1"

    def pause(self, paused: bool = True) -> None:
        """Stop (or resume) sending updates on every socket; pings and commands go on. Tests pause before they
        compare what was sent with what was stored, so no update is still on the wire."""
        self._paused = paused

    def drop_connections(self) -> None:
        """Close every open socket abruptly (a forced reconnect from outside)."""
        if self._loop is not None and self._server is not None:
            for conn in list(self._server.connections):
                self._loop.call_soon_threadsafe(conn.transport.close)

    def sent(self, coins: list[str] | None = None) -> set[tuple[str, int]]:
        """Every distinct update delivered at least once, as (coin, update time in microseconds)."""
        out: set[tuple[str, int]] = set()
        with self._lock:
            for (_, coin), nxt in self._cursor.items():
                if coins is not None and coin not in coins:
                    continue
                c = self._coins[coin]
                out.update((coin, c.updates[k - c.offset][0]) for k in range(c.offset, nxt))
        return out

    # ------------------------------------------------------------------ handshake
    def _plan_of(self, key: str | None) -> str | None:
        if not key:
            return None
        if self.keys:
            return self.keys.get(key)
        if self.api_key is not None:
            return self.plan if key == self.api_key else None
        return self.plan

    def _key(self, request: Any) -> str | None:
        key = request.headers.get("x-cg-pro-api-key")
        if key:
            return str(key)
        query = dict(parse_qsl(urlsplit(request.path).query))
        return query.get("x_cg_pro_api_key")

    def _check_handshake(self, connection: Any, request: Any) -> Any:
        key = self._key(request)
        plan = self._plan_of(key)
        if plan is None:
            return _reject(connection, HTTPStatus.UNAUTHORIZED, "Invalid API key or missing x-cg-pro-api-key header")
        if plan != "pro":
            return _reject(connection, HTTPStatus.FORBIDDEN, "The WebSocket API is available on paid plans only")
        with self._lock:
            if self._open.get(key or "", 0) >= self.max_sockets:
                return _reject(
                    connection,
                    HTTPStatus.TOO_MANY_REQUESTS,
                    f"at most {self.max_sockets} concurrent connections per key",
                )
            self._open[key or ""] = self._open.get(key or "", 0) + 1
        connection.kallos_key = key
        return None

    # ------------------------------------------------------------------ one connection
    async def _handle(self, ws: Any) -> None:
        key = getattr(ws, "kallos_key", "") or ""
        self.connections += 1
        coins: list[str] = []
        stalled = asyncio.Event()
        sender: asyncio.Task[None] | None = None
        pinger = asyncio.create_task(self._ping(ws, stalled))
        try:
            await ws.send(json.dumps({"code": 3000, "message": "Connection established", "uuid": _uuid(self._rng)}))
            await ws.send(json.dumps({"type": "welcome"}))
            subscribed = False
            async for raw in ws:
                try:
                    cmd = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"code": 4000, "message": "Invalid JSON command"}))
                    continue
                command = cmd.get("command") if isinstance(cmd, dict) else None
                if command == "subscribe":
                    if cmd.get("identifier") != IDENTIFIER:
                        await ws.send(json.dumps({"type": "reject_subscription", "identifier": cmd.get("identifier")}))
                        continue
                    subscribed = True
                    await ws.send(json.dumps({"type": "confirm_subscription", "identifier": IDENTIFIER}))
                elif command == "message" and subscribed:
                    data = _data(cmd)
                    action = data.get("action")
                    wanted = [c for c in data.get("coin_id", []) if isinstance(c, str)]
                    if action == "set_tokens":
                        for c in wanted:
                            if c in coins:
                                continue
                            if c not in self._coins:
                                await ws.send(json.dumps({"code": UNKNOWN_COIN, "message": f"Invalid coin id: {c}"}))
                            elif len(coins) >= self.per_socket:
                                await ws.send(
                                    json.dumps(
                                        {
                                            "code": OVER_LIMIT,
                                            "message": f"Subscription limit of {self.per_socket} reached: {c} "
                                            "not subscribed",
                                        }
                                    )
                                )
                            else:
                                coins.append(c)
                                self._rewind(key, c)
                                await ws.send(
                                    json.dumps({"code": 2000, "message": f"Subscription is successful for {c}"})
                                )
                        if sender is None and coins:
                            sender = asyncio.create_task(self._send_updates(ws, key, coins, stalled))
                    elif action == "unset_tokens":
                        coins[:] = [c for c in coins if c not in wanted]
                elif command == "unsubscribe":
                    subscribed = False
                    coins.clear()
                else:
                    await ws.send(json.dumps({"code": 4000, "message": f"Unknown command {command!r}"}))
        except Exception:  # noqa: BLE001 - a client going away mid-frame ends its connection only
            pass
        finally:
            pinger.cancel()
            if sender is not None:
                sender.cancel()
            with self._lock:
                self._open[key] = max(0, self._open.get(key, 1) - 1)

    def _rewind(self, key: str, coin: str) -> None:
        with self._lock:
            nxt = self._cursor.get((key, coin), 0)
            self._cursor[(key, coin)] = max(self._coins[coin].offset, nxt - self.replay)

    async def _ping(self, ws: Any, stalled: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if not stalled.is_set():
                await ws.send(json.dumps({"type": "ping", "message": int(time.time())}))

    def _fire(self, fault: str) -> bool:
        with self._lock:
            if self._fired[fault] >= self.faults.times:
                return False
            self._fired[fault] += 1
            return True

    async def _send_updates(self, ws: Any, key: str, coins: list[str], stalled: asyncio.Event) -> None:
        f = self.faults
        n = 0
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        while True:
            if not coins or self._paused:
                await asyncio.sleep(0.05)
                continue
            for coin in list(coins):
                with self._lock:
                    k = self._cursor[(key, coin)]
                    c = self._coins[coin]
                    t_us, p, pp, m, v = c.get(k)
                    self._cursor[(key, coin)] = k + 1
                    if not self.record:
                        c.forget_before(k + 1 - self.replay)
                n += 1
                frame = self._frame(coin, t_us, p, pp, m, v, null=bool(f.null_every and n % f.null_every == 0))
                await ws.send(frame)
                self.updates_sent += 1
                if f.duplicate_every and n % f.duplicate_every == 0:
                    await ws.send(frame)
                if f.malformed_every and n % f.malformed_every == 0:
                    await ws.send(MALFORMED[(n // f.malformed_every) % len(MALFORMED)])
                if f.drop_after and n == f.drop_after and self._fire("drop"):
                    ws.transport.close()
                    return
                if f.stall_after and n == f.stall_after and self._fire("stall"):
                    stalled.set()
                    await asyncio.sleep(f.stall_seconds)
                    stalled.clear()
                if interval:
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        next_at = time.monotonic()
                elif n % 64 == 0:
                    await asyncio.sleep(0)  # let commands and pings through

    def _frame(self, coin: str, t_us: int, p: float, pp: float, m: float | None, v: float, *, null: bool) -> str:
        """One update frame, its keys in one of the precomputed random orders (cheap enough for 100k frames/s)."""
        template = self._templates[self._rng.randrange(len(self._templates))]
        return template % {
            "i": json.dumps(coin),
            "p": repr(p),
            "pp": repr(pp),
            "m": "null" if m is None else repr(m),
            "v": "null" if null else repr(v),
            "t": f"{t_us // 1_000_000}.{t_us % 1_000_000:06d}",
        }


def _templates(rng: random.Random, n: int = 24) -> list[str]:
    """`n` frame templates, each with the update's keys in a different random order."""
    fields = ['"c":"C1"', '"i":%(i)s', '"vs":"usd"', '"p":%(p)s', '"pp":%(pp)s', '"m":%(m)s', '"v":%(v)s', '"t":%(t)s']
    out = []
    for _ in range(n):
        order = fields[:]
        rng.shuffle(order)
        out.append("{" + ",".join(order) + "}")
    return out


def _reject(connection: Any, status: HTTPStatus, message: str) -> Any:
    response = connection.respond(status, json.dumps({"error": message}) + "\n")
    response.headers["Content-Type"] = "application/json"
    return response


def _data(cmd: dict[str, Any]) -> dict[str, Any]:
    raw = cmd.get("data")
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _uuid(rng: random.Random) -> str:
    a, b, c, d, e = (rng.getrandbits(n) for n in (32, 16, 16, 16, 48))
    return f"{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}"


def _ms_array(ms: int) -> Any:
    import numpy as np

    return np.asarray([ms], dtype=np.int64)
