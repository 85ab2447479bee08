"""The step runner: each step isolated, recorded in the ledger, its outcome folded into the run's status.

A step is a function ``(ctx: StepContext) -> StepOutcome`` (sync or async; docs/decisions.md#D37). The runner
reads the outcome's fields; it never guesses from free-form counts. It adds the API calls and credits the step
used (measured on the context's client) when the step did not report them itself.

Errors (docs/decisions.md#D39): a :class:`~kallos.errors.KallosError` raised by a step is an expected failure
(the API is down, the database refused a write, bad input): the step is recorded `failed` and the run goes on;
a step whose `requires` failed is `skipped` (it would only repeat the failure or work on nothing new). Any other
exception is a bug: it is logged with its traceback, the step is recorded `failed`, and the exception is raised
again after the ledger is written, so the command exits 1 instead of hiding the bug among coin failures.

The run's status: every step that ran succeeded (or was skipped) -> `success` (exit 0); some step or some coins
failed while others did their work -> `partial` (exit 3); nothing that ran succeeded, or the market-data step
failed as a whole -> `failed` (exit 4).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kallos.errors import ConfigError, KallosError
from kallos.log import get_logger, redact
from kallos.pipeline import telemetry
from kallos.pipeline.contract import StepContext, StepFn, StepOutcome
from kallos.pipeline.ledger import Ledger

log = get_logger(__name__)

EXIT_CODES = {"success": 0, "partial": 3, "failed": 4}


@dataclass
class Step:
    name: str
    fn: StepFn
    requires: tuple[str, ...] = ()
    """Steps whose failure makes this one pointless (it is then skipped)."""
    skip_reason: str | None = None
    """Set when the schedule says the step is not due: it is recorded as skipped with this reason."""


@dataclass
class StepResult:
    name: str
    outcome: StepOutcome
    error: str | None = None
    duration_seconds: float = 0.0
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    """The exception the step raised, if any (single-step commands raise it again for its exit code)."""
    telemetry: dict[str, Any] = field(default_factory=dict)
    """The step's share of the client's counters and its rows (docs/decisions.md#D90)."""

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def failed(self) -> dict[str, str]:
        """Coins that failed in the step: {coin: reason}."""
        return dict(self.outcome.failures)

    def ledger_counts(self) -> dict[str, Any]:
        """What the ledger stores for the step: the outcome's fields and the duration."""
        counts = {**self.outcome.as_dict(), "duration_seconds": round(self.duration_seconds, 3)}
        if self.telemetry:
            counts["telemetry"] = self.telemetry
        return counts


@dataclass
class RunSummary:
    run_id: str
    command: str
    status: str
    steps: list[StepResult]
    duration_seconds: float
    api: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    def totals(self) -> dict[str, Any]:
        """The figures of the summary: coins updated, rows written and quarantined, API calls and credits."""
        out: dict[str, Any] = {"coins_updated": 0, "rows_written": 0, "rows_quarantined": 0, "coins_failed": 0}
        for s in self.steps:
            out["rows_written"] += s.outcome.rows_written
            out["rows_quarantined"] += s.outcome.rows_quarantined
            out["coins_failed"] += s.outcome.coins_failed
            if s.name in ESSENTIAL:
                out["coins_updated"] += s.outcome.coins_ok
        out["api_calls"] = int(self.api.get("calls", 0))
        out["api_credits"] = int(self.api.get("credits", 0))
        per_coin = self.calls_per_coin_day()
        if per_coin is not None:
            out["calls_per_coin_day"] = per_coin
        out["duration_seconds"] = round(self.duration_seconds, 3)
        return out

    def calls_per_coin_day(self) -> float | None:
        """The market step's API calls per coin it keeps (one run a day: per coin per day; docs/decisions.md#D121),
        None when the run had no market step that reported it."""
        for s in self.steps:
            if s.name in ESSENTIAL:
                value = s.outcome.extra.get("calls_per_coin_day")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
        return None

    def as_json(self) -> dict[str, Any]:
        """`kallos run --json`: the run, its totals and each step's outcome, plain JSON types."""
        return {
            "run_id": self.run_id,
            "command": self.command,
            "status": self.status,
            "exit_code": self.exit_code,
            "totals": self.totals(),
            "steps": [
                {"name": s.name, **s.ledger_counts(), "error": s.error} for s in self.steps
            ],
        }

    def as_counts(self) -> dict[str, Any]:
        """What the ledger stores for the run."""
        return {
            **self.totals(),
            "steps": {s.name: s.status for s in self.steps},
            "step_seconds": {s.name: round(s.duration_seconds, 3) for s in self.steps},
            "api": {k: v for k, v in self.api.items() if k != "by_endpoint"},
            "telemetry": telemetry.total(s.telemetry for s in self.steps),
        }


class Reporter(Protocol):
    def step_started(self, name: str) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...


class _Silent:
    def step_started(self, name: str) -> None:
        return None

    def step_finished(self, result: StepResult) -> None:
        return None


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, KallosError) else f"{type(exc).__name__}: {exc}"
    return redact(text)  # the summary and the ledger show it: docs/decisions.md#D50


def _api_used(ctx: StepContext) -> tuple[int, int]:
    if ctx.client is None:
        return 0, 0
    return ctx.client.stats.calls, ctx.client.stats.credits


async def _call(step: Step, ctx: StepContext) -> StepOutcome:
    value = step.fn(ctx)
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, StepOutcome):
        raise TypeError(f"step {step.name!r} returned {type(value).__name__}, not a StepOutcome")
    return value


def _step_error(outcome: StepOutcome) -> str | None:
    if outcome.status == "failed":
        return outcome.reason or "step reported failure"
    if outcome.status == "partial" and outcome.failures:
        shown = "; ".join(f"{k}: {v}" for k, v in list(outcome.failures.items())[:5])
        return f"{len(outcome.failures)} coin(s) failed: {shown}"
    return None


async def run_steps(
    steps: Sequence[Step], ledger: Ledger, ctx: StepContext, reporter: Reporter | None = None
) -> list[StepResult]:
    """Run `steps` in order, each isolated; record each in the ledger; return their results.

    A bug (an exception that is not a KallosError) is recorded and raised again: the run stops there.
    """
    reporter = reporter or _Silent()
    results: dict[str, StepResult] = {}
    for step in steps:
        broken = [r for r in step.requires if r in results and results[r].status == "failed"]
        reporter.step_started(step.name)
        started = ledger.start_step(step.name)
        t0 = time.perf_counter()
        api_before = telemetry.snapshot(ctx.client.stats if ctx.client is not None else None)
        error: str | None = None
        raised: BaseException | None = None
        if step.skip_reason is not None or broken:
            outcome = StepOutcome.skipped(
                step.skip_reason or f"skipped because step(s) {', '.join(broken)} failed"
            )
        else:
            calls0, credits0 = _api_used(ctx)
            try:
                outcome = await _call(step, ctx)
            except Exception as exc:  # noqa: BLE001 - recorded below; bugs are raised again after that
                raised = exc
                outcome = StepOutcome(status="failed", reason=_error_text(exc))
                log.error(
                    "step failed" if isinstance(exc, KallosError) else "step failed with an unexpected error",
                    exc_info=not isinstance(exc, KallosError),
                    extra={"step": step.name, "run_id": ledger.run_id, "error": outcome.reason},
                )
            calls, credits = _api_used(ctx)
            if not outcome.api_calls and not outcome.api_credits and calls > calls0:
                outcome = outcome.with_api(calls - calls0, credits - credits0)
            error = _step_error(outcome)
            error = redact(error) if error else None  # the summary and the ledger show it (docs/decisions.md#D50)
        duration = time.perf_counter() - t0
        tele = telemetry.step_telemetry(
            api_before,
            telemetry.snapshot(ctx.client.stats if ctx.client is not None else None),
            rows_written=outcome.rows_written,
            rows_quarantined=outcome.rows_quarantined,
        )
        result = StepResult(step.name, outcome, error, duration, raised, tele)
        results[step.name] = result
        ledger.finish_step(step.name, started, outcome.status, result.ledger_counts(), error)
        log.info(
            "step finished",
            extra={
                "step": step.name,
                "status": outcome.status,
                "run_id": ledger.run_id,
                "duration_seconds": round(duration, 3),
            },
        )
        reporter.step_finished(result)
        # A bug is raised again after it is recorded; so is a configuration error, which would fail every step
        # alike (exit 78, docs/decisions.md#D59).
        if raised is not None and (isinstance(raised, ConfigError) or not isinstance(raised, KallosError)):
            raise raised
    return list(results.values())


ESSENTIAL = ("market", "backfill")
"""Steps whose failure fails the run: without market data the run did not do its job, whatever else worked."""


def run_status(results: Sequence[StepResult], essential: Sequence[str] = ESSENTIAL) -> str:
    ran = [r for r in results if r.status != "skipped"]
    if not ran:
        return "success"
    if all(r.status == "success" for r in ran):
        return "success"
    if all(r.status == "failed" for r in ran) or any(
        r.name in essential and r.status == "failed" for r in ran
    ):
        return "failed"
    return "partial"
