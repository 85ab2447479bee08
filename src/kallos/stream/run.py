"""`kallos stream`: sockets in, micro-batches out, until the duration ends or SIGINT/SIGTERM asks for a clean stop.

The stream does not take the pipeline lock: it runs for hours beside the daily run and writes only its own tables
(`price_ticks`, `latest_prices`) and provisional rows of `market_snapshots`, all idempotent upserts. It records
itself in the run ledger as command `stream` (docs/decisions.md#D105).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import numpy as np

from kallos.errors import ConfigError, StoreError, StreamError
from kallos.log import get_logger
from kallos.pipeline.contract import StepOutcome, StepStatus
from kallos.pipeline.ledger import Ledger
from kallos.settings import Settings
from kallos.stream.batch import TickBatch
from kallos.stream.connection import SocketStream
from kallos.stream.dedup import ReplayFilter
from kallos.stream.fanout import NatsPublisher, Publisher, RedisPublisher
from kallos.stream.protocol import PriceUpdate
from kallos.stream.shards import plan_shards
from kallos.stream.sink import StoreSink

log = get_logger(__name__)

PAID_PLANS = ("pro",)


@dataclass
class StreamOptions:
    duration: float | None = None
    """Seconds to stream; None streams until SIGINT/SIGTERM."""
    flush_seconds: float = 1.0
    max_batch: int = 50_000
    max_buffer: int = 2_000_000
    """Updates held in memory while the store refuses writes; past this the stream stops (after a last try)."""
    silence_seconds: float = 60.0
    snapshot_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings, *, duration: float | None = None) -> StreamOptions:
        """The `KALLOS_STREAM_*` settings, with a duration from the command line."""
        return cls(
            duration=duration,
            flush_seconds=settings.stream_flush_seconds,
            silence_seconds=settings.stream_silence_seconds,
            snapshot_seconds=settings.stream_snapshot_seconds,
        )


@dataclass
class StreamStats:
    coins: int = 0
    sockets: int = 0
    received: int = 0
    stored: int = 0
    replays_dropped: int = 0
    malformed: int = 0
    reconnects: int = 0
    silent_sockets: int = 0
    flushes: int = 0
    store_retries: int = 0
    published: int = 0
    seconds: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def counts(self) -> dict[str, int | float]:
        """The flat figures the run ledger keeps (latency percentiles as `latency_p50_ms`...)."""
        flat: dict[str, int | float] = {k: v for k, v in self.__dict__.items() if isinstance(v, (int, float))}
        flat.update({f"latency_{k}_ms": v for k, v in self.latency_ms.items()})
        return flat


def check_stream_settings(settings: Settings) -> str:
    """Refuse, before connecting, what cannot work: a plan without streaming, no key, a URL that would send the key
    in clear text to another host. Returns the stream URL."""
    if settings.coingecko_plan not in PAID_PLANS:
        raise ConfigError(
            f"kallos stream needs a paid CoinGecko plan: the WebSocket API is for paid plans (Analyst and above), "
            f"and KALLOS_COINGECKO_PLAN is {settings.coingecko_plan!r}; set KALLOS_COINGECKO_PLAN=pro with a paid key",
            setting="KALLOS_COINGECKO_PLAN",
        )
    if not settings.api_key:
        raise ConfigError("kallos stream needs COINGECKO_API_KEY (a paid plan's key)", setting="COINGECKO_API_KEY")
    url = settings.coingecko_ws_url
    parts = urlsplit(url)
    if parts.scheme == "ws" and not _is_loopback(parts.hostname or ""):
        raise ConfigError(
            "ws:// (no TLS) is accepted only for loopback testing; use wss:// so the key is not sent in clear text",
            setting="KALLOS_COINGECKO_WS_URL",
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PriceStream:
    """The running stream: sockets feed one replay filter and one batch; a flusher writes the batch."""

    def __init__(
        self,
        settings: Settings,
        coins: Sequence[str],
        sink: StoreSink,
        *,
        options: StreamOptions | None = None,
        publishers: Sequence[Publisher] = (),
    ) -> None:
        self.url = check_stream_settings(settings)
        self.key = settings.api_key or ""
        self.shards = plan_shards(coins)
        self.sink = sink
        self.options = options or StreamOptions()
        self.publishers = list(publishers)
        self.stats = StreamStats(coins=sum(map(len, self.shards)), sockets=len(self.shards))
        self.filter = ReplayFilter()
        self.batch = TickBatch()
        self.stop = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._latencies: list[np.ndarray] = []
        self._latency_count = 0
        self.sockets: list[SocketStream] = []

    def on_update(self, update: PriceUpdate) -> None:
        self.stats.received += 1
        if not self.filter.accept(update):
            return
        self.batch.add(update, time.time_ns() // 1000)
        if len(self.batch) >= self.options.max_batch:
            self._flush_now.set()

    async def run(self) -> StreamStats:
        t0 = time.monotonic()
        self.filter = ReplayFilter(await asyncio.to_thread(self.sink.last_seen))
        self.sockets = [
            SocketStream(
                f"socket-{i + 1}",
                self.url,
                self.key,
                shard,
                self.on_update,
                self.stop,
                silence_seconds=self.options.silence_seconds,
            )
            for i, shard in enumerate(self.shards)
        ]
        tasks = [asyncio.create_task(s.run(), name=s.name) for s in self.sockets]
        flusher = asyncio.create_task(self._flusher(), name="flusher")
        timer = asyncio.create_task(self._timer(), name="timer")
        error: BaseException | None = None
        try:
            done, _ = await asyncio.wait([*tasks, flusher], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    break
        finally:
            self.stop.set()
            timer.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await self._flush(final=True)
            self._collect()
            self.stats.seconds = round(time.monotonic() - t0, 3)
        if error is not None:
            raise error
        return self.stats

    async def _timer(self) -> None:
        if self.options.duration is not None:
            await asyncio.sleep(self.options.duration)
            self.stop.set()

    async def _flusher(self) -> None:
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self._flush_now.wait(), timeout=self.options.flush_seconds)
            except TimeoutError:
                pass
            self._flush_now.clear()
            await self._flush()

    async def _flush(self, *, final: bool = False) -> None:
        if len(self.batch) == 0:
            return
        current, self.batch = self.batch, TickBatch()
        ticks = current.ticks()
        try:
            written = await asyncio.to_thread(self.sink.write, ticks)
        except StoreError as exc:
            self.stats.store_retries += 1
            current.extend(self.batch)
            self.batch = current
            log.warning(
                "stream batch not stored yet; keeping it for the next flush",
                extra={"rows": len(current), "error": str(exc)},
            )
            if final or len(self.batch) > self.options.max_buffer:
                raise StreamError(
                    f"{len(self.batch)} streamed updates could not be stored: {exc}", rows=len(self.batch)
                ) from exc
            return
        commit_us = time.time_ns() // 1000
        self.stats.flushes += 1
        self.stats.stored += written
        self._note_latency(commit_us - current.ts_micros())
        for pub in self.publishers:
            try:
                self.stats.published += await pub.publish(ticks)
            except Exception as exc:  # noqa: BLE001 - the bus is optional: its failure must not stop storing
                log.warning("fan-out failed for a batch", extra={"publisher": type(pub).__name__, "error": str(exc)})

    def _note_latency(self, micros: np.ndarray) -> None:
        if self._latency_count < 5_000_000:
            self._latencies.append(micros)
            self._latency_count += len(micros)

    def _collect(self) -> None:
        self.stats.replays_dropped = self.filter.replays
        for s in self.sockets:
            self.stats.malformed += s.stats.malformed
            self.stats.reconnects += s.stats.reconnects
            self.stats.silent_sockets += s.stats.silent
        if self._latencies:
            ms = np.concatenate(self._latencies) / 1000.0
            self.stats.latency_ms = {
                "p50": round(float(np.percentile(ms, 50)), 3),
                "p90": round(float(np.percentile(ms, 90)), 3),
                "p99": round(float(np.percentile(ms, 99)), 3),
                "max": round(float(ms.max()), 3),
            }


class _StreamLedger:
    """The stream's rows in the run ledger (command and step `stream`), written through the sink's sessions so a
    DuckDB file is held only while they are written."""

    def __init__(self, sink: StoreSink) -> None:
        self.sink = sink
        self.ledger: Ledger | None = None
        self.started: dt.datetime | None = None

    def start(self) -> None:
        with self.sink.session() as store:
            self.ledger = Ledger(store, "stream")
            self.ledger.start_run()
            self.started = self.ledger.start_step("stream")

    def finish(self, stats: StreamStats, error: BaseException | None) -> None:
        if self.ledger is None or self.started is None:
            return
        status: StepStatus = "failed" if error is not None else "success"
        outcome = StepOutcome(
            status=status,
            coins_ok=stats.coins,
            rows_written=stats.stored,
            reason=None if error is None else f"{type(error).__name__}: {error}",
            extra=stats.counts(),
        )
        try:
            with self.sink.session() as store:
                self.ledger.store = store
                self.ledger.finish_step("stream", self.started, status, outcome.as_dict(), error)
                self.ledger.finish_run(status, outcome.as_dict(), error)
        except StoreError as exc:
            log.warning("the stream's ledger row could not be finished", extra={"error": str(exc)})


async def open_publishers(settings: Settings) -> list[Publisher]:
    """The configured buses, connected; a bus that is configured but unreachable stops the command at start."""
    out: list[Publisher] = []
    for setting, url, publisher, package in (
        ("KALLOS_STREAM_NATS_URL", settings.stream_nats_url, NatsPublisher, "nats-py"),
        ("KALLOS_STREAM_REDIS_URL", settings.stream_redis_url, RedisPublisher, "redis"),
    ):
        if not url:
            continue
        try:
            out.append(await publisher.connect(url))
        except ImportError:
            raise ConfigError(
                f"{setting} is set but {package} is not installed: pip install 'kallos[stream]'", setting=setting
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure to reach the bus is reported as configuration
            raise ConfigError(f"cannot reach the message bus of {setting}: {exc}", setting=setting) from None
    return out


async def stream_prices(
    settings: Settings,
    coins: Sequence[str],
    *,
    options: StreamOptions | None = None,
    sink: StoreSink | None = None,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
) -> StreamStats:
    """Stream `coins` into the store (and the bus when configured) until the duration ends, a signal stops it, or
    the caller sets `stop` (a clean stop either way: what is held is flushed)."""
    check_stream_settings(settings)
    options = options or StreamOptions.from_settings(settings)
    own_sink = sink is None
    sink = sink or StoreSink(settings.database_url, snapshot_seconds=options.snapshot_seconds)
    publishers = await open_publishers(settings)
    stream = PriceStream(settings, coins, sink, options=options, publishers=publishers)
    if stop is not None:
        stream.stop = stop
    ledger = _StreamLedger(sink)
    await asyncio.to_thread(ledger.start)
    loop = asyncio.get_running_loop()
    installed = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stream.stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
    outcome_error: BaseException | None = None
    try:
        return await stream.run()
    except BaseException as exc:
        outcome_error = exc
        raise
    finally:
        await asyncio.to_thread(ledger.finish, stream.stats, outcome_error)
        for sig in installed:
            loop.remove_signal_handler(sig)
        for pub in publishers:
            try:
                await pub.close()
            except Exception as exc:  # noqa: BLE001 - closing the bus must not hide the stream's own result
                log.warning("fan-out close failed", extra={"error": str(exc)})
        if own_sink:
            sink.close()
