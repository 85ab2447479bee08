"""What follows a failed CoinGecko call: the retry policy (docs/decisions.md#D46), run by tenacity.

The client sends a request once and turns the answer into data or a typed error (``CoinGeckoClient._send_once``);
this module decides, from the error's type alone, whether and when to try again:

- only :class:`TransientAPIError` is retried (408, 429, 5xx, timeouts, connection errors, malformed JSON);
  every other error fails the call at once;
- a 429 waits its Retry-After (``no_retry_after_wait_seconds`` without one) and pushes the shared rate-limit
  bucket past it, so every caller of the key, in every process, pauses too; a Retry-After above
  ``retry_after_max_seconds`` fails the call at once with :class:`RetryBudgetExceeded`;
- any other transient error backs off exponentially with jitter: with ``ceiling = min(backoff_max_seconds,
  backoff_base_seconds * 2 ** (attempt - 1))`` the wait is uniform in [ceiling / 2, ceiling];
- after ``max_retries`` retries the call fails with :class:`RetryBudgetExceeded` naming the last error.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from kallos.errors import (
    APIConnectionError,
    APITimeoutError,
    CoinGeckoError,
    RateLimitedError,
    RetryBudgetExceeded,
    TransientAPIError,
)
from kallos.log import get_logger

if TYPE_CHECKING:
    from kallos.coingecko.client import ClientStats
    from kallos.coingecko.ratelimit import RateLimiter

log = get_logger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetrySettings:
    max_retries: int = 6
    retry_after_max_seconds: float = 300.0
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    no_retry_after_wait_seconds: float = 60.0


def describe(error: CoinGeckoError) -> str:
    """A few words on what failed, for the retry log line."""
    if isinstance(error, APITimeoutError):
        return "timeout"
    if isinstance(error, APIConnectionError):
        return "connection error"
    if error.status == 200:
        return "malformed JSON"
    return f"HTTP {error.status}" if error.status is not None else "transport error"


class RetryPolicy:
    """Runs one call under the policy; counts retries and waits into the client's stats."""

    def __init__(
        self,
        settings: RetrySettings,
        *,
        limiter: RateLimiter,
        stats: ClientStats,
        sleep: Sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.stats = stats
        self._sleep = sleep
        self._random = rng or random.Random()

    async def run(self, send: Callable[[], Awaitable[T]]) -> T:
        """``await send()`` until it returns, or raise the error that ends the call (counted as a failure)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientAPIError),
            after=self._after_failure,
            wait=self._wait,
            stop=self._stop,
            retry_error_callback=self._give_up,
            before_sleep=self._before_sleep,
            sleep=self._sleep,
        )
        try:
            result: T = await retrying(send)
        except CoinGeckoError:
            self.stats.failures += 1
            raise
        return result

    # --- the policy, from the last error --------------------------------------------------------------------

    def wait_for(self, error: TransientAPIError, attempt: int) -> float:
        """Seconds before the attempt after `attempt` (1-based) that failed with `error`."""
        if isinstance(error, RateLimitedError):
            asked = error.retry_after
            return asked if asked is not None else self.settings.no_retry_after_wait_seconds
        ceiling = min(self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _too_long(self, error: TransientAPIError, attempt: int) -> bool:
        limit = self.settings.retry_after_max_seconds
        return isinstance(error, RateLimitedError) and self.wait_for(error, attempt) > limit

    # --- tenacity hooks --------------------------------------------------------------------------------------

    async def _after_failure(self, state: RetryCallState) -> None:
        """A 429 pauses the shared bucket for everyone (unless the call is about to give up on its length)."""
        error = _error(state)
        if isinstance(error, RateLimitedError) and not self._too_long(error, state.attempt_number):
            await self.limiter.apenalize(self.wait_for(error, state.attempt_number))

    def _wait(self, state: RetryCallState) -> float:
        return self.wait_for(_error(state), state.attempt_number)

    def _stop(self, state: RetryCallState) -> bool:
        """Give up when the retries are spent, or when the server asks to wait too long."""
        attempt = state.attempt_number
        return attempt > self.settings.max_retries or self._too_long(_error(state), attempt)

    def _give_up(self, state: RetryCallState) -> Any:
        error = _error(state)
        attempts = state.attempt_number
        if self._too_long(error, attempts):
            assert isinstance(error, RateLimitedError)
            asked = error.retry_after
            wait = self.wait_for(error, attempts)
            source = f"Retry-After: {asked:g} s" if asked is not None else f"no Retry-After, default {wait:g} s"
            raise RetryBudgetExceeded(
                f"CoinGecko asked to wait longer than allowed ({source} > KALLOS_RETRY_AFTER_MAX_SECONDS="
                f"{self.settings.retry_after_max_seconds:g}); run again later or raise the ceiling",
                endpoint=error.endpoint,
                status=error.status,
                coin_id=error.coin_id,
                retry_after=asked,
            ) from error
        raise RetryBudgetExceeded(
            f"CoinGecko call failed after {attempts} attempts (KALLOS_MAX_RETRIES={self.settings.max_retries}); "
            f"last error: {error.message}",
            endpoint=error.endpoint,
            status=error.status,
            error_code=error.error_code,
            coin_id=error.coin_id,
            attempts=attempts,
        ) from error

    def _before_sleep(self, state: RetryCallState) -> None:
        error = _error(state)
        wait = state.upcoming_sleep
        self.stats.retries += 1
        self.stats.retry_wait_seconds += wait
        if isinstance(error, RateLimitedError):
            self.stats.rate_limit_wait_seconds += wait
        log.warning(
            "retrying %s after %s (attempt %d/%d) in %.2f s",
            error.endpoint,
            describe(error),
            state.attempt_number,
            self.settings.max_retries + 1,
            wait,
            extra={
                "endpoint": error.endpoint,
                "status": error.status,
                "attempt": state.attempt_number,
                "wait_seconds": round(wait, 3),
                "coin_id": error.coin_id,
                "error_code": error.error_code,
                "reason": error.message,
            },
        )


def _error(state: RetryCallState) -> TransientAPIError:
    """The transient error the last attempt failed with (the policy retries nothing else)."""
    assert state.outcome is not None
    error = state.outcome.exception()
    assert isinstance(error, TransientAPIError)
    return error
