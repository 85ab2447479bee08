"""The retry policy on its own: which errors are retried, how long it waits, how it gives up."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kallos.coingecko.client import ClientStats
from kallos.coingecko.ratelimit import RateLimiter
from kallos.coingecko.retry import RetryPolicy, RetrySettings, describe
from kallos.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthError,
    RateLimitedError,
    RetryBudgetExceeded,
    TransientAPIError,
)
from kallos.fake import FakeClock


def policy(clock: FakeClock, **settings: Any) -> tuple[RetryPolicy, ClientStats, RateLimiter]:
    stats = ClientStats()
    limiter = RateLimiter(60_000, clock=clock.time, sleep=clock.sleep)
    return (
        RetryPolicy(RetrySettings(**settings), limiter=limiter, stats=stats, sleep=clock.sleep, rng=random.Random(1)),
        stats,
        limiter,
    )


def failing(*errors: Exception) -> Any:
    queue = list(errors)

    async def send() -> str:
        if queue:
            raise queue.pop(0)
        return "ok"

    return send


def test_backoff_doubles_up_to_its_ceiling_with_jitter_in_the_upper_half() -> None:
    p, _, _ = policy(FakeClock(), backoff_base_seconds=0.5, backoff_max_seconds=4.0)
    error = TransientAPIError("503", status=503)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        waits = [p.wait_for(error, attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempt


def test_a_429_waits_its_retry_after_and_pauses_the_shared_bucket() -> None:
    clock = FakeClock()
    p, stats, limiter = policy(clock)
    start = clock.time()

    async def go() -> tuple[str, float]:
        result = await p.run(failing(RateLimitedError("429", status=429, retry_after=7.0)))
        return result, await limiter.acquire()

    assert asyncio.run(go()) == ("ok", 0.0)
    assert clock.time() - start == pytest.approx(7.0)
    assert (stats.retries, stats.retry_wait_seconds, stats.failures) == (1, 7.0, 0)


def test_other_errors_are_not_retried_and_count_as_a_failure() -> None:
    p, stats, _ = policy(FakeClock())
    with pytest.raises(AuthError):
        asyncio.run(p.run(failing(AuthError("no"))))
    assert (stats.retries, stats.failures) == (0, 1)


def test_a_retry_after_above_the_ceiling_gives_up_at_once_even_on_the_last_attempt() -> None:
    p, stats, _ = policy(FakeClock(), max_retries=1, retry_after_max_seconds=30)
    send = failing(APITimeoutError("t"), RateLimitedError("429", status=429, retry_after=60.0))
    with pytest.raises(RetryBudgetExceeded, match="asked to wait longer") as info:
        asyncio.run(p.run(send))
    assert info.value.context["retry_after"] == 60.0 and stats.failures == 1


def test_the_budget_names_the_attempts_and_the_last_error() -> None:
    p, stats, _ = policy(FakeClock(), max_retries=2)
    send = failing(*(APIConnectionError("refused") for _ in range(5)))
    with pytest.raises(RetryBudgetExceeded, match="after 3 attempts.*refused"):
        asyncio.run(p.run(send))
    assert (stats.retries, stats.failures) == (2, 1)


def test_the_log_says_what_failed_by_its_type() -> None:
    assert describe(APITimeoutError("x")) == "timeout"
    assert describe(APIConnectionError("did not answer")) == "connection error"  # the type decides, not the text
    assert describe(TransientAPIError("x", status=200)) == "malformed JSON"
    assert describe(TransientAPIError("x", status=502)) == "HTTP 502"
