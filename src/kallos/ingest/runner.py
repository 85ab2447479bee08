"""Run one async job per coin in bounded batches, write each coin as it is validated, count everything.

Batches keep memory bounded (only one batch of coins' frames is alive at a time) while the client's limiter and
semaphore keep the calls inside the rate budget. Writes happen in this process and thread, one coin per
transaction (DuckDB is single-process, docs/decisions.md#D13). One coin's failure is recorded and the others go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kallos.errors import ConfigError, InputError, KallosError, StoreUnavailableError
from kallos.ingest.state import CoinWrite, write_coins
from kallos.log import get_logger
from kallos.pipeline.contract import ExtraValue, NullProgress, Progress, StepOutcome, StepStatus
from kallos.store import Store

log = get_logger("kallos.ingest")


@dataclass
class RunCounts:
    """What an ingestion step counts while it runs; :meth:`outcome` turns it into the step's result."""

    coins: int = 0
    """Coins done: written, or already up to date."""
    rows_written: int = 0
    rows_quarantined: int = 0
    events: int = 0
    api_calls: int = 0
    api_credits: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    extra: dict[str, ExtraValue] = field(default_factory=dict)

    def measure_api(self, client: Any, before: tuple[int, int]) -> None:
        """Record the calls and credits the client made since `before` (see :func:`api_mark`)."""
        calls, credits = api_mark(client)
        self.api_calls, self.api_credits = calls - before[0], credits - before[1]

    def outcome(self, *, status: StepStatus | None = None, reason: str | None = None) -> StepOutcome:
        """The step's outcome: `partial` when some coins failed (the others were done), else `success`."""
        return StepOutcome(
            status=status or ("partial" if self.failed else "success"),
            coins_ok=self.coins,
            rows_written=self.rows_written,
            rows_quarantined=self.rows_quarantined,
            failures=self.failed,
            api_calls=self.api_calls,
            api_credits=self.api_credits,
            reason=reason,
            extra={"events": self.events, **self.extra},
        )

    def finish(self, message: str, started: float) -> StepOutcome:
        """The step's outcome, logged once with its counts and duration (failed coins as a count)."""
        outcome = self.outcome()
        log.info(
            message,
            extra={
                **outcome.counts(),
                "failed": len(self.failed),
                "duration_seconds": round(time.perf_counter() - started, 4),
            },
        )
        return outcome


def api_mark(client: Any) -> tuple[int, int]:
    """The client's call and credit counters now (subtract two marks for what a step used)."""
    return client.stats.calls, client.stats.credits


def quarantined(w: CoinWrite) -> int:
    if w.events.empty:
        return 0
    return int((w.events["action"] == "quarantined").sum())


async def run_per_coin(
    store: Store,
    coins: Sequence[str],
    job: Callable[[str], Awaitable[CoinWrite | None]],
    counts: RunCounts,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
    label: str = "coins",
    run_id: str | None = None,
    after_batch: Callable[[], Awaitable[Any]] | None = None,
    write_every: int = 8,
    write_seconds: float = 1.0,
) -> None:
    """Fetch `coins` in batches with `job`, write each result, fill `counts` (failures in counts.failed).

    A coin fails alone on an expected error (a :class:`~kallos.errors.KallosError`: the API, validation, the
    store); any other exception is a bug and propagates (docs/decisions.md#D39).
    """
    progress = progress or NullProgress()
    progress.start(label, total=len(coins))
    try:
        for start in range(0, len(coins), batch_size):
            batch = list(coins[start : start + batch_size])
            started = {c: time.perf_counter() for c in batch}
            tasks = {asyncio.ensure_future(_tagged(c, job)) for c in batch}
            pending: list[CoinWrite] = []
            last_write = time.monotonic()
            try:
                # Coins are written as they arrive, whole coins only, a few per transaction (at least every
                # `write_seconds`): a killed run keeps every coin written so far, and the per-write overhead
                # is shared by several coins.
                for next_done in asyncio.as_completed(tasks):
                    coin, result = await next_done
                    if isinstance(result, CoinWrite):
                        pending.append(result)
                    else:
                        _handle(coin, result, counts, started[coin])
                    due = pending and time.monotonic() - last_write >= write_seconds
                    if len(pending) >= write_every or due:
                        _write(store, pending, counts, started, run_id)
                        pending = []
                        last_write = time.monotonic()
                    progress.advance()
                _write(store, pending, counts, started, run_id)
            finally:
                for t in tasks:
                    t.cancel()
            if after_batch is not None:
                await after_batch()
    finally:
        progress.finish()


async def _tagged(coin: str, job: Callable[[str], Awaitable[CoinWrite | None]]) -> tuple[str, Any]:
    try:
        return coin, await job(coin)
    except Exception as exc:  # noqa: BLE001 - handed to _handle, which decides what is a per-coin failure
        return coin, exc


def _handle(coin: str, result: Any, counts: RunCounts, started: float) -> None:
    """A coin that produced nothing to write: up to date (None) or failed (an exception)."""
    if isinstance(result, BaseException):
        if isinstance(result, StoreUnavailableError | ConfigError) or not isinstance(result, KallosError):
            raise result  # a bug, the database gone or the configuration wrong: every coin would fail alike
        counts.failed[coin] = str(result)
        log.warning(
            "coin failed: %s",
            result,
            extra={"coin_id": coin, "duration_seconds": round(time.perf_counter() - started, 4)},
        )
        return
    counts.coins += 1
    counts.skipped += 1


def _write(
    store: Store, writes: list[CoinWrite], counts: RunCounts, started: dict[str, float], run_id: str | None
) -> None:
    if not writes:
        return
    try:
        done = write_coins(store, writes, run_id=run_id)
    except StoreUnavailableError:
        raise
    except KallosError as exc:
        for w in writes:
            counts.failed[w.coin_id] = str(exc)
        log.warning(
            "write failed for %d coin(s): %s", len(writes), exc, extra={"coins": [w.coin_id for w in writes]}
        )
        return
    for w in writes:
        rows, n_events = done[w.coin_id]
        q = quarantined(w)
        counts.coins += 1
        counts.rows_written += rows
        counts.rows_quarantined += q
        counts.events += n_events
        log.info(
            "coin stored",
            extra={
                "coin_id": w.coin_id,
                "rows_fetched": len(w.bars) + q,
                "rows_written": rows,
                "rows_quarantined": q,
                "events": n_events,
                "duration_seconds": round(time.perf_counter() - started[w.coin_id], 4),
            },
        )


def require(condition: bool, message: str, **context: Any) -> None:
    if not condition:
        raise InputError(message, **context)
