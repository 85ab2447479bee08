"""The step contract: one typed context in, one frozen outcome out.

Every unit of work that writes to the store (a step of `kallos run`, or a single-step command such as
`kallos market backfill`) is a function ``step(ctx: StepContext) -> StepOutcome`` (sync or async). The runner
reads the outcome's fields for the ledger and the summaries, so no caller guesses which count means "rows
written". The progress reporter is an interface: the CLI implements it, nothing below the CLI imports one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from kallos.coingecko.client import CoinGeckoClient
    from kallos.settings import Settings
    from kallos.store import Store

StepStatus = Literal["success", "partial", "skipped", "failed"]
STEP_STATUSES: tuple[StepStatus, ...] = ("success", "partial", "skipped", "failed")

ExtraValue = int | float | str | bool | tuple[str, ...] | None
"""A step-specific count or fact (a tuple of str for short lists such as coins asked for but unknown)."""


class Progress(Protocol):
    """What a long step tells the person watching: a labelled task with an optional total."""

    def start(self, label: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """The reporter used when nobody is watching (tests, the Python API, workers)."""

    def start(self, label: str, total: int | None = None) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None

    def finish(self) -> None:
        return None


def _plain(extra: Mapping[str, ExtraValue]) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()}


def _frozen(mapping: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class StepOutcome:
    """What a step did. `failures` maps a coin (CoinGecko id) to why it failed; `extra` holds step-specific
    counts (for example `details_written`, `value_rows`) under names the step documents."""

    status: StepStatus = "success"
    coins_ok: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    failures: Mapping[str, str] = field(default_factory=dict)
    api_calls: int = 0
    api_credits: int = 0
    reason: str | None = None
    """Why the step was skipped or failed as a whole (shown in summaries and stored in the ledger)."""
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STEP_STATUSES:
            raise ValueError(f"unknown step status {self.status!r}; expected one of {STEP_STATUSES}")
        object.__setattr__(self, "failures", _frozen({str(k): str(v) for k, v in self.failures.items()}))
        object.__setattr__(
            self, "extra", _frozen({k: tuple(v) if isinstance(v, list) else v for k, v in self.extra.items()})
        )

    @classmethod
    def skipped(cls, reason: str, **extra: ExtraValue) -> StepOutcome:
        return cls(status="skipped", reason=reason, extra=extra)

    @property
    def coins_failed(self) -> int:
        return len(self.failures)

    def with_api(self, calls: int, credits: int) -> StepOutcome:
        return replace(self, api_calls=calls, api_credits=credits)

    def as_dict(self) -> dict[str, object]:
        """The ledger's JSON form: plain types only."""
        return {
            "status": self.status,
            "coins_ok": self.coins_ok,
            "rows_written": self.rows_written,
            "rows_quarantined": self.rows_quarantined,
            "failures": dict(self.failures),
            "api_calls": self.api_calls,
            "api_credits": self.api_credits,
            "reason": self.reason,
            "extra": _plain(self.extra),
        }

    def counts(self) -> dict[str, object]:
        """The flat dict the step functions returned before the contract (the extra counts beside the
        fields, `failed` as {coin: reason}); the documented Python functions still return it."""
        out: dict[str, object] = {"coins": self.coins_ok, **_plain(self.extra)}
        out.update(
            status=self.status,
            rows_written=self.rows_written,
            rows_quarantined=self.rows_quarantined,
            failed=dict(self.failures),
            api_calls=self.api_calls,
            api_credits=self.api_credits,
        )
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def outcome_status(*, failures: Mapping[str, str], coins_ok: int) -> StepStatus:
    """The usual verdict of a per-coin step: all ok -> success; some failed -> partial; all failed -> failed."""
    if not failures:
        return "success"
    return "partial" if coins_ok > 0 else "failed"


@dataclass(frozen=True)
class StepContext:
    """Everything a step may use. `client` is None for steps that make no API calls; `now` is the run's clock
    (pinned by `KALLOS_NOW` or `--now`), read once when the run starts so every step sees the same "now"."""

    store: Store
    settings: Settings
    run_id: str
    now: dt.datetime
    client: CoinGeckoClient | None = None
    progress: Progress = field(default_factory=NullProgress)

    @classmethod
    def direct(
        cls,
        store: Store,
        settings: Settings,
        *,
        client: CoinGeckoClient | None = None,
        progress: Progress | None = None,
        run_id: str = "",
    ) -> StepContext:
        """A context for calling a step directly, outside a ledgered run (the Python API, tests): no run id,
        "now" from `kallos.clock`."""
        from kallos import clock

        return cls(store, settings, run_id, clock.utcnow(), client, progress or NullProgress())

    def require_client(self) -> CoinGeckoClient:
        if self.client is None:
            raise RuntimeError("this step calls the CoinGecko API but was given no client")
        return self.client


StepFn = Callable[[StepContext], "StepOutcome | Awaitable[StepOutcome]"]
