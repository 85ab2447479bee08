"""The fake CoinGecko HTTP server: a real loopback server, started in-process or by ``kallos fake-api serve``.

One request goes: record -> injected fault (if any) -> key check for the plan -> sliding-window rate limit ->
endpoint -> answer with ``X-Fake-Now``. The clock is fixed (the dataset's now unless given) so both sides of
a test agree on "today" (docs/decisions.md#D36); move it with ``srv.now = ...``.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from kallos.fake import responses as r
from kallos.fake.api import Api
from kallos.fake.dataset import Dataset, datetime_to_ms, ms_to_datetime, now_text
from kallos.fake.faults import SHAPE_FAULTS, Faults, malformed
from kallos.log import get_logger

log = get_logger(__name__)

PLANS = ("public", "demo", "pro")
PREFIX = "/api/v3"
KEY_HEADERS = {"x-cg-pro-api-key": "pro", "x-cg-demo-api-key": "demo"}
KEY_PARAMS = {"x_cg_pro_api_key": "pro", "x_cg_demo_api_key": "demo"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. Key values are never kept: only which form carried a key."""

    method: str
    path: str  # below /api/v3, e.g. "/coins/bitcoin/market_chart"
    params: dict[str, str]  # the query without key parameters
    headers: dict[str, str]  # lower-cased names; key headers' values replaced by "***"
    has_key: bool
    key_kind: str | None  # "pro" | "demo" | None: the header/parameter family that carried the key
    key_via: str | None  # "header" | "query" | None
    status: int
    fault: str | None
    time: float  # wall clock (time.time()) at arrival
    duration: float  # seconds spent answering


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...


@dataclass(frozen=True)
class Answer:
    """What the server does with one request, whatever carries it (an HTTP connection or an httpx transport)."""

    status: int  # 0 when the connection is dropped without an answer (the "disconnect" fault)
    payload: bytes
    headers: dict[str, str]  # Content-Type, Content-Length, Cache-Control, X-Fake-Now and the answer's own
    fault: str | None
    delay: float = 0.0  # seconds to hold the answer back (the "slow" fault)

    @property
    def dropped(self) -> bool:
        return self.fault == "disconnect"


@dataclass
class _Window:
    hits: collections.deque[float] = field(default_factory=collections.deque)


def load_keys_file(path: str) -> dict[str, str]:
    """A key file (docs/decisions.md#D29): JSON ``{"key": "plan"}`` or lines ``key plan`` (``#`` comments)."""
    from pathlib import Path

    text = Path(path).read_text()
    if text.lstrip().startswith("{"):
        keys = {str(k): str(v) for k, v in json.loads(text).items()}
    else:
        keys = {}
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                key, _, plan = line.partition(" ")
                keys[key] = plan.strip()
    for plan in keys.values():
        if plan not in PLANS:
            raise ValueError(f"key file {path}: plan {plan!r} is not one of {', '.join(PLANS)}")
    return keys


class FakeCoinGecko:
    """A fake CoinGecko API v3 on loopback.

    ``FakeCoinGecko(dataset=SimulatedMarket(...), plan="pro", api_key=None, rate_limit_per_minute=None,
    faults=None, host="127.0.0.1", port=0, now=None)``; ``start()``, ``url``, ``requests``, ``now``,
    ``stop()``, or use it as a context manager. Unstarted, :meth:`answer` serves a request in-process
    (:class:`kallos.fake.transport.FakeTransport` puts httpx on it: no socket, no thread). ``api_key=None``
    accepts any non-empty key of the plan's kind (docs/decisions.md#D29); ``keys={"k1": "demo", ...}`` (a key file)
    names the valid keys and their plans (a demo key sent in the pro header to a pro server then gets 10011, as
    the real API does). ``clock`` (``time()`` for the records, ``monotonic()`` for the rate window) is the ``time``
    module unless a test gives a fake one.
    """

    def __init__(
        self,
        dataset: Dataset | None = None,
        plan: str = "pro",
        api_key: str | None = None,
        rate_limit_per_minute: int | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        now: dt.datetime | None = None,
        *,
        keys: dict[str, str] | None = None,
        monthly_call_credit: int = 1_000_000,
        clock: Clock = time,
    ) -> None:
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {', '.join(PLANS)}")
        if dataset is None:
            from kallos.fake.simulated import SimulatedMarket

            dataset = SimulatedMarket()
        self.dataset = dataset
        self.plan = plan
        self.api_key = api_key
        self.keys = dict(keys or {})
        self.rate_limit_per_minute = rate_limit_per_minute
        self.faults = faults
        self.host = host
        self.port = port
        self.monthly_call_credit = monthly_call_credit
        self._now_ms = datetime_to_ms(dataset.now)
        if now is not None:
            self.now = now  # validated: within the dataset
        self._api = Api(dataset, plan)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._windows: dict[str, _Window] = {}
        self._ok_calls = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.clock = clock  # time() stamps the records, monotonic() runs the rate window (a test may fake both)
        self._in_flight = 0
        self._idle = threading.Condition()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeCoinGecko:
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-coingecko:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        # Let answers in progress (a slow fault) finish and be recorded, then cut kept-alive connections.
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=10)
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def _end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def __enter__(self) -> FakeCoinGecko:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block serving (the CLI); Ctrl-C or SIGTERM ends it."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API root to give KALLOS_COINGECKO_BASE_URL."""
        return f"{self.base_url}{PREFIX}"

    # ------------------------------------------------------------------ clock and records
    @property
    def now(self) -> dt.datetime:
        return ms_to_datetime(self._now_ms)

    @now.setter
    def now(self, value: dt.datetime) -> None:
        ms = datetime_to_ms(value)
        if ms > self.dataset.last_ms:
            raise ValueError(f"now is past the dataset's last instant {ms_to_datetime(self.dataset.last_ms)}")
        self._now_ms = ms

    @property
    def now_header(self) -> str:
        return now_text(self.now)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count(self, path_prefix: str = "", status: int | None = None) -> int:
        """Requests served whose path starts with `path_prefix` (and had `status`, when given)."""
        return sum(
            1
            for q in self.requests
            if q.path.startswith(path_prefix) and (status is None or q.status == status)
        )

    def reset_rate_limit(self) -> None:
        with self._lock:
            self._windows.clear()

    # ---------------------------------------------------------- request pipeline (called by the handler)
    def _key_of(
        self, headers: dict[str, str], params: dict[str, str]
    ) -> tuple[str | None, str | None, str | None]:
        for name, kind in KEY_HEADERS.items():
            if headers.get(name):
                return headers[name], kind, "header"
        for name, kind in KEY_PARAMS.items():
            if params.get(name):
                return params[name], kind, "query"
        return None, None, None

    def _check_key(self, key: str | None, kind: str | None, path: str) -> None:
        now = self.now
        if key is not None:
            key_plan = self.keys.get(key, kind)
            if self.plan == "pro" and key_plan in ("demo", "public"):
                raise r.wrong_host(10011, now)
            if self.plan in ("demo", "public") and key_plan == "pro":
                raise r.wrong_host(10010, now)
            # Any non-empty key is valid unless a key (or a key file) names the valid ones (docs/decisions.md#D29).
            known = key in self.keys or key == self.api_key or (self.api_key is None and not self.keys)
            if not known:
                raise r.missing_key()
        elif self.plan in ("pro", "demo"):
            raise r.missing_key()
        if path.rstrip("/") == "/key" and self.plan != "pro":
            raise r.pro_only()

    def _admit(self, who: str) -> int | None:
        """Sliding 60-s window (docs/decisions.md#D30): None if admitted, else the seconds to wait."""
        limit = self.rate_limit_per_minute
        if not limit:
            return None
        t = self.clock.monotonic()
        with self._lock:
            hits = self._windows.setdefault(who, _Window()).hits
            while hits and hits[0] <= t - 60.0:
                hits.popleft()
            if len(hits) >= limit:
                return max(1, int(hits[0] + 60.0 - t + 0.999))
            hits.append(t)
            return None

    def _key_info(self) -> dict[str, Any]:
        with self._lock:
            used = self._ok_calls
        limit = self.rate_limit_per_minute or 1000
        return {
            "plan": "Other",
            "rate_limit_request_per_minute": limit,
            "monthly_call_credit": self.monthly_call_credit,
            "current_total_monthly_calls": used,
            "current_remaining_monthly_calls": self.monthly_call_credit - used,
            "api_key_rate_limit_request_per_minute": limit,
            "api_key_monthly_call_credit": self.monthly_call_credit,
            "api_key_current_total_monthly_calls": used,
        }

    def _answer(
        self, path: str, params: dict[str, str], headers: dict[str, str], client: str
    ) -> tuple[int, Any, str, dict[str, str]]:
        """(status, body, content type, extra headers) for a request that got past fault injection."""
        try:
            key, kind, _ = self._key_of(headers, params)
            self._check_key(key, kind, path)
            wait = self._admit(key or client)
            if wait is not None:
                raise r.rate_limited(wait)
            clean = {k: v for k, v in params.items() if k not in KEY_PARAMS}
            if path.rstrip("/") == "/key":
                body = self._key_info()
            else:
                body = self._api.handle(path, clean, self.now)
            with self._lock:
                self._ok_calls += 1
            return 200, body, "application/json; charset=utf-8", {}
        except r.ApiError as err:
            return err.status, err.body, err.content_type, err.headers
        except Exception:  # a bug or an input we did not foresee: answer like the real API's 500, and log it
            log.exception("fake server failed on %s", path, extra={"endpoint": path})
            failure = r.server_error(500)
            return failure.status, failure.body, failure.content_type, failure.headers

    def answer(
        self,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        client: str = "127.0.0.1",
        *,
        method: str = "GET",
        sleep: Callable[[float], None] = time.sleep,
    ) -> Answer:
        """Serve one request (`path` from /api/v3 on, `headers` lower-cased) and record it: the HTTP-free core.

        ``sleep`` holds a "slow" answer back (the HTTP server sleeps for real; the in-process transport passes a
        no-op and waits ``Answer.delay`` on its own clock).
        """
        started = self.clock.time()
        t0 = self.clock.monotonic()
        fault: str | None = None
        extra: dict[str, str]
        delay = 0.0
        if not path.startswith(PREFIX):
            status, body, ctype, extra = (
                404,
                {"error": "Incorrect path. Please check https://docs.coingecko.com/"},
                "application/json; charset=utf-8",
                {},
            )
            sub = path
        else:
            sub = path[len(PREFIX) :] or "/"
            faults = self.faults
            if faults is not None and faults.applies_to(sub):
                fault = faults.next_fault()
            if fault == "disconnect":
                self._record_request(method, sub, params, headers, 0, fault, started, t0)
                return Answer(0, b"", {}, fault)
            if fault == "slow":
                delay = faults.slow_seconds if faults else 0.0
                sleep(delay)
            if fault in (None, "slow", "truncated_json", *SHAPE_FAULTS):
                status, body, ctype, extra = self._answer(sub, params, headers, client)
                if fault in SHAPE_FAULTS and status == 200:
                    body = malformed(body, fault, faults)
            else:
                err = _fault_error(fault, faults)
                status, body, ctype, extra = err.status, err.body, err.content_type, err.headers
        payload = body.encode("utf-8") if isinstance(body, str) else _encode(body)
        if fault == "truncated_json":
            payload = payload[: max(1, len(payload) // 2)]
        self._record_request(method, sub, params, headers, status, fault, started, t0)
        out = {
            "Content-Type": ctype,
            "Content-Length": str(len(payload)),
            "Cache-Control": "public, max-age=30",
            "X-Fake-Now": self.now_header,
            **extra,
        }
        return Answer(status, payload, out, fault, delay)

    def _record_request(
        self,
        method: str,
        sub: str,
        params: dict[str, str],
        headers: dict[str, str],
        status: int,
        fault: str | None,
        started: float,
        t0: float,
    ) -> None:
        _, kind, via = self._key_of(headers, params)
        self._record(
            RecordedRequest(
                method=method,
                path=sub,
                params={k: v for k, v in params.items() if k not in KEY_PARAMS},
                headers={k: ("***" if k in KEY_HEADERS else v) for k, v in headers.items()},
                has_key=kind is not None,
                key_kind=kind,
                key_via=via,
                status=status,
                fault=fault,
                time=started,
                duration=self.clock.monotonic() - t0,
            )
        )

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a backlog of 5 (the default) drops bursts of connections: 1 s SYN retries

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeCoinGecko
    ) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close kept-alive connections too, so a stopped server really stops answering."""
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client hanging up mid-answer (timeouts, slow faults) is not an error here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeCoinGecko/1.0"
    timeout = 120  # idle keep-alive connections end after this

    server: _Server
    _headers_buffer: list[bytes]  # set by BaseHTTPRequestHandler, absent from its stubs; _serve appends the body

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.server.fake
        fake._begin()
        try:
            self._serve(fake)
        finally:
            fake._end()

    def _serve(self, fake: FakeCoinGecko) -> None:
        split = urlsplit(self.path)
        answer = fake.answer(
            unquote(split.path),
            dict(parse_qsl(split.query, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            self.client_address[0],
            method=self.command,
        )
        if answer.dropped:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            self.send_response(answer.status)
            for k, v in answer.headers.items():
                self.send_header(k, v)
            # Headers and body in one write: split writes meet Nagle + delayed ACK (40 ms a keep-alive call).
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(answer.payload)
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


def _encode(body: Any) -> bytes:
    """Strict JSON; a NaN that slipped through becomes null (the real API never sends NaN)."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError:
        log.warning("fake server answer held NaN; sent as null")
        return json.dumps(_nan_to_none(body), separators=(",", ":")).encode("utf-8")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else value
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def _fault_error(fault: str, faults: Faults | None) -> r.ApiError:
    if fault == "429":
        return r.rate_limited(faults.retry_after if faults else 1)
    if fault == "429_no_retry_after":
        return r.rate_limited(None)
    if fault == "429_long":
        return r.rate_limited(faults.retry_after_long if faults else 120)
    if fault in ("500", "502", "503"):
        return r.server_error(int(fault))
    if fault == "cloudflare_403":
        return r.cloudflare_403()
    if fault == "blocked_403":
        return r.blocked()
    raise ValueError(f"unknown fault {fault!r}")
