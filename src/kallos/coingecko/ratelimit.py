"""A capacity-1 token bucket shared by every request of a process and by every process using the same key.

docs/decisions.md#D30: the client never sends more than R calls in any 60-second window. A bucket of capacity 1
(no bursts) hands out one send slot every ``(60 + guard) / R`` seconds; the small guard (0.5 s per minute by
default, under 1 % of the rate) absorbs the jitter between the moment a slot is taken here and the moment the
request reaches the server's own sliding window.

Sharing: slots are *reserved* in a state file (``next_at``, a wall-clock time) under a lock file
(``filelock``, taken without blocking the event loop: tried at once, waited for in a worker thread), so two
jobs with the same key and host take turns instead of each using the full rate. The state lives in the user's
cache directory, keyed by a hash of host and key (never the key itself), and is overridable (tests, CI). A 429
pushes ``next_at`` past its Retry-After so every concurrent caller and process waits, not only the one that was
refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import platformdirs
from filelock import FileLock, Timeout

from kallos.errors import ConfigError
from kallos.log import get_logger

log = get_logger(__name__)

DEFAULT_GUARD_SECONDS = 0.5
QUEUE_LIMIT = 1024
"""Reservations that may be outstanding at once (concurrency up to 256 per process, a few processes). State
further ahead than this many intervals past the retry ceiling is a clock jump or a corrupt file; anything less is
a real queue, honoured however slow the rate (docs/decisions.md#D54: 0.01/min means one call per 100 minutes)."""
STATE_DIR_ENV = "KALLOS_RATE_LIMIT_DIR"
_STATE_WIDTH = 256
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


def default_state_dir() -> Path:
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("kallos", appauthor=False)) / "ratelimit"


def bucket_id(host: str, api_key: str | None) -> str:
    """Stable, secret-free name for the shared bucket of one (host, key) pair."""
    digest = hashlib.sha256(f"{host.rstrip('/')}\n{api_key or ''}".encode()).hexdigest()
    return digest[:24]


class RateLimiter:
    """Hands out send slots at most every ``interval`` seconds (``acquire``), optionally across processes.

    ``rate_per_minute`` may be ``math.inf`` (no limit: benchmarks, fake servers without limit).
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        state_path: Path | None = None,
        guard_seconds: float = DEFAULT_GUARD_SECONDS,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        lock_timeout: float = 30.0,
        max_wait_seconds: float = 3600.0,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._guard = guard_seconds
        self._state_path = state_path
        self._lock = FileLock(str(state_path) + ".lock", timeout=lock_timeout) if state_path else None
        self._lock_timeout = lock_timeout
        self._max_wait = max_wait_seconds
        self._next_at = 0.0  # used when not shared
        self.rate_per_minute = math.inf
        self.interval = 0.0
        self.waited_seconds = 0.0
        self.set_rate(rate_per_minute)
        if state_path is not None:
            try:
                state_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the rate-limit state directory {state_path.parent} ({exc.strerror}); set "
                    f"{STATE_DIR_ENV} to a writable directory",
                    setting=STATE_DIR_ENV,
                ) from None

    @classmethod
    def shared(
        cls,
        rate_per_minute: float,
        *,
        host: str,
        api_key: str | None,
        state_dir: Path | None = None,
        **kw: object,
    ) -> RateLimiter:
        path = (state_dir or default_state_dir()) / f"{bucket_id(host, api_key)}.json"
        return cls(rate_per_minute, state_path=path, **kw)  # type: ignore[arg-type]

    @property
    def state_path(self) -> Path | None:
        return self._state_path

    def set_rate(self, rate_per_minute: float) -> None:
        """Change R (e.g. after reading the pro plan's limit from `/key`)."""
        if not rate_per_minute > 0:
            raise ConfigError(
                f"rate limit must be positive, got {rate_per_minute}", setting="KALLOS_RATE_LIMIT_PER_MINUTE"
            )
        self.rate_per_minute = float(rate_per_minute)
        self.interval = 0.0 if math.isinf(rate_per_minute) else (60.0 + self._guard) / rate_per_minute

    async def acquire(self) -> float:
        """Wait for this caller's send slot; returns the seconds waited. Never blocks the event loop."""
        if self.interval == 0.0 and self._state_path is None:
            return 0.0
        slot = self._reserve_local() if self._state_path is None else await self._under_lock(self._reserve_shared)
        wait = slot - self._clock()
        if wait > 0:
            self.waited_seconds += wait
            await self._sleep(wait)
            return wait
        return 0.0

    def penalize(self, seconds: float) -> None:
        """Nobody sends before ``now + seconds`` (after a 429 carrying Retry-After). Blocking: for sync callers."""
        until = self._clock() + max(seconds, 0.0)
        if self._state_path is None:
            self._next_at = max(self._next_at, until)
            return
        with self._locked():
            self._push_shared(until)

    async def apenalize(self, seconds: float) -> None:
        """:meth:`penalize` from a coroutine, without blocking the event loop on another process's lock."""
        until = self._clock() + max(seconds, 0.0)
        if self._state_path is None:
            self._next_at = max(self._next_at, until)
            return
        await self._under_lock(lambda: self._push_shared(until))

    async def _under_lock(self, update: Callable[[], T]) -> T:
        """Run `update` holding the state file's lock without blocking the event loop (docs/decisions.md#D47).

        The lock is tried at once: uncontended (the usual case) that costs a few microseconds. When another
        process holds it, the wait for it runs in a worker thread, up to ``lock_timeout``.
        """
        try:
            with self._locked().acquire(blocking=False):
                return update()
        except Timeout:
            return await asyncio.to_thread(self._with_lock, update)

    def _with_lock(self, update: Callable[[], T]) -> T:
        with self._locked():
            return update()

    def _reserve_local(self) -> float:
        slot = max(self._clock(), self._next_at)
        self._next_at = slot + self.interval
        return slot

    def _reserve_shared(self) -> float:
        """The next slot of the shared bucket (the lock is held)."""
        now = self._clock()
        state = self._read()
        next_at = float(state.get("next_at", 0.0))
        if next_at - now > self._max_wait + self.interval * QUEUE_LIMIT:
            # A clock jump or a corrupt file: never park a process for longer than the retry ceiling.
            log.warning("rate-limit state was %.0f s ahead of now; reset", next_at - now)
            next_at = now
        slot = max(now, next_at)
        state["next_at"] = slot + self.interval
        self._write(state)
        return slot

    def _push_shared(self, until: float) -> None:
        """Nobody of the shared bucket sends before `until` (the lock is held)."""
        state = self._read()
        state["next_at"] = max(float(state.get("next_at", 0.0)), until)
        self._write(state)

    def _locked(self) -> FileLock:
        assert self._lock is not None
        return self._lock

    def _read(self) -> dict[str, float]:
        assert self._state_path is not None
        try:
            with open(self._state_path, "rb") as fh:
                data = json.loads(fh.read(_STATE_WIDTH))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, state: dict[str, float]) -> None:
        """Overwritten in place, padded to a fixed width, under the lock.

        No rename and no truncate: on ext4 both force a data flush (milliseconds per call). A torn or corrupt
        file reads as empty, which costs at most one early slot.
        """
        assert self._state_path is not None
        data = json.dumps(state).encode().ljust(_STATE_WIDTH)
        fd = os.open(self._state_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
        finally:
            os.close(fd)


__all__ = ["Clock", "RateLimiter", "STATE_DIR_ENV", "Sleep", "Timeout", "bucket_id", "default_state_dir"]
