"""The one error hierarchy of Kallos.

Every error Kallos raises on purpose derives from :class:`KallosError`. Each carries its context as attributes
(coin, date, table, setting, endpoint...) so that logs and the CLI can say *what* went wrong *where* without
parsing messages, and each class has the exit code the CLI maps it to (see docs/operations.md)::

    KallosError                      exit 1  (anything unexpected but ours)
    ├── ConfigError                  exit 78 a configuration input is missing or invalid (names it)
    │   ├── SignalConfigError             signal_generation.json is invalid (names file, key and value)
    │   └── ClockAheadError               this run's clock is ahead of the API's (KALLOS_NOW or the system clock)
    ├── LockHeldError                exit 5  another run holds the pipeline lock
    ├── PartialFailure               exit 3  some coins or steps failed, the rest were done
    ├── StepFailed                   exit 4  a pipeline step (or the whole run) failed
    ├── InputError                   exit 4  bad user input: a file, a frame, a CLI value (names the input)
    │   ├── TimeframeError       exit 2  a timeframe that is not 1h, 1d or 1w (names the accepted values)
    │   ├── DataValidationError           a frame breaks a contract (missing column, duplicate date...)
    │   └── IndexConstructionError        the index cannot be built (names the selection date)
    ├── StoreError                   exit 4  the database (names the table)
    │   ├── StoreBusyError                an embedded DuckDB file is open in another process
    │   ├── StoreUnavailableError         the database went away mid-command (stops the whole command)
    │   ├── SchemaMismatchError           frame columns do not fit the table
    │   ├── UnknownCoinError              a write names coins absent from `coins`
    │   └── StoreWriteError               a batch was rejected; the table is unchanged
    └── CoinGeckoError               exit 4  the CoinGecko API (names endpoint, status, error code)
        ├── TransientAPIError             retryable: 408, 429, 5xx, timeouts, connection errors, bad JSON
        │   ├── RateLimitedError          429, with the Retry-After it carried
        │   ├── APITimeoutError           no answer within the timeout
        │   └── APIConnectionError        the connection failed or dropped before an answer
        ├── RetryBudgetExceeded           retries exhausted, or Retry-After above the configured ceiling
        ├── AuthError                     401/403: bad key, wrong plan for the host, Cloudflare block
        ├── PlanLimitError                10005/10012: the plan does not allow this endpoint or range
        ├── UnresolvableHostError         the API host name never resolved in this run (not retried)
        ├── NotFoundError                 404 for one coin: that coin alone fails
        └── BadRequestError               other 4xx: the request itself is wrong
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class KallosError(Exception):
    """Base class. ``context`` holds the facts of the failure (never secrets)."""

    exit_code: int = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={_short(v)}" for k, v in self.context.items())
        return f"{self.message} ({details})"


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(KallosError):
    exit_code = 78

    def __init__(self, message: str, *, setting: str | None = None, **context: Any) -> None:
        super().__init__(message, setting=setting, **context)
        self.setting = setting


class ClockAheadError(ConfigError):
    """The run's clock is ahead of the API's: refused before anything is stored (docs/decisions.md#D55)."""


class UsageError(KallosError):
    """A command asked for something it cannot do as asked (exit 2, like the CLI framework's usage errors)."""

    exit_code = 2


class LockHeldError(KallosError):
    exit_code = 5


class PartialFailure(KallosError):
    exit_code = 3

    def __init__(self, message: str, *, failures: Mapping[str, str] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.failures: dict[str, str] = dict(failures or {})


class StepFailed(KallosError):
    exit_code = 4


class InputError(KallosError):
    exit_code = 4


class TimeframeError(InputError):
    """A timeframe other than 1h, 1d or 1w: a usage error like a bad option (docs/decisions.md#D80)."""

    exit_code = 2


class DataValidationError(InputError):
    @classmethod
    def of_problems(cls, subject: str, problems: Sequence[DataValidationError]) -> DataValidationError:
        """One error naming every problem a frame check found (a lone problem is returned as it is).

        The context is the first problem's (so a caller can still read its coin and date) plus ``checks``, the
        number of problems; the message lists them all.
        """
        if len(problems) == 1:
            return problems[0]
        listed = "; ".join(str(p) for p in problems)
        return cls(f"{subject} fails {len(problems)} checks: {listed}", **problems[0].context, checks=len(problems))


class SignalConfigError(ConfigError):
    """A configuration input like any setting, so exit 78 (docs/decisions.md#D59)."""

    def __init__(self, message: str, *, setting: str | None = "KALLOS_SIGNAL_CONFIG", **context: Any) -> None:
        super().__init__(message, setting=setting, **context)


class IndexConstructionError(InputError):
    pass


class StoreError(KallosError):
    exit_code = 4

    def __init__(self, message: str, *, table: str | None = None, **context: Any) -> None:
        super().__init__(message, table=table, **context)
        self.table = table


class StoreBusyError(StoreError):
    pass


class StoreUnavailableError(StoreError):
    """The connection to the database was lost: no later write can succeed, so the command stops (it is not one
    coin's failure). Every batch is one transaction, so nothing is half-written (docs/decisions.md#D53)."""


class SchemaMismatchError(StoreError):
    pass


class UnknownCoinError(StoreError):
    def __init__(self, message: str, *, table: str | None = None, coins: list[str] | None = None) -> None:
        super().__init__(message, table=table, coins=coins)
        self.coins = list(coins or [])


class StoreWriteError(StoreError):
    pass


class CoinGeckoError(KallosError):
    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        error_code: int | None = None,
        coin_id: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status, error_code=error_code, coin_id=coin_id, **context)
        self.endpoint = endpoint
        self.status = status
        self.error_code = error_code
        self.coin_id = coin_id


class TransientAPIError(CoinGeckoError):
    pass


class RateLimitedError(TransientAPIError):
    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class APITimeoutError(TransientAPIError):
    """No answer within KALLOS_REQUEST_TIMEOUT_SECONDS (connect, write, read or pool)."""


class APIConnectionError(TransientAPIError):
    """The connection could not be made, or dropped before an answer."""


class RetryBudgetExceeded(CoinGeckoError):
    pass


class AuthError(CoinGeckoError):
    pass


class PlanLimitError(CoinGeckoError):
    pass


class UnresolvableHostError(CoinGeckoError):
    pass


class NotFoundError(CoinGeckoError):
    pass


class BadRequestError(CoinGeckoError):
    pass


class StreamError(KallosError):
    """The price stream cannot go on (every socket failed for good, or the store refused its writes)."""

    exit_code = 4
