"""The step runner: each step isolated, recorded in the ledger, its outcome folded into the run's status.

A step is a function (sync or async) returning a dict of counts, optionally with `"status"` (`success`,
`partial`, `skipped`) and `"failed": {coin: message}`. An exception in a step is recorded as that step's
failure and the run goes on; a step whose `requires` failed is `skipped` (it would only repeat the failure or
work on nothing new). The run's status: every step that ran succeeded (or was skipped) -> `success` (exit 0);
some step or some coins failed while others did their work -> `partial` (exit 3); nothing that ran succeeded,
or the market-data step failed as a whole -> `failed` (exit 4).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kallos.errors import ConfigError, KallosError
from kallos.log import get_logger, redact
from kallos.pipeline.ledger import Ledger

log = get_logger(__name__)

StepFn = Callable[[], "dict[str, Any] | Awaitable[dict[str, Any]]"]
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
    status: str
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_seconds: float = 0.0

    @property
    def failed(self) -> dict[str, str]:
        return failures_of(self.counts)


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
        out = {"coins_updated": 0, "rows_written": 0, "rows_quarantined": 0, "coins_failed": 0}
        for s in self.steps:
            figures = step_figures(s.counts)
            for key in ("rows_written", "rows_quarantined"):
                out[key] += figures[key]
            out["coins_failed"] += len(s.failed)
            if s.name in ("market", "backfill"):
                out["coins_updated"] += figures["coins_updated"]
        out["api_calls"] = int(self.api.get("calls", 0))
        out["api_credits"] = int(self.api.get("credits", 0))
        out["duration_seconds"] = round(self.duration_seconds, 3)
        return out

    def as_counts(self) -> dict[str, Any]:
        """What the ledger stores for the run."""
        return {
            **self.totals(),
            "steps": {s.name: s.status for s in self.steps},
            "step_seconds": {s.name: round(s.duration_seconds, 3) for s in self.steps},
            "api": {k: v for k, v in self.api.items() if k != "by_endpoint"},
        }


_WRITTEN_KEYS = (
    "rows_written",
    "rows",
    "rows_upserted",
    "market_rows",
    "ohlc_rows",
    "coins_written",
    "coins_upserted",
    "category_rows",
    "rule_rows",
    "composite_rows",
    "constituent_rows",
    "value_rows",
    "turnover_rows",
    "indicator_rows",
    "details_written",
    "coins_updated_rows",
)
_QUARANTINE_KEYS = ("rows_quarantined", "quarantined")
_COIN_KEYS = ("coins_updated", "coins_ok", "coins")


def step_figures(counts: dict[str, Any]) -> dict[str, int]:
    """Normalise the counts steps report into the summary's three figures (steps name their counts freely)."""

    def first_int(keys: Sequence[str]) -> int:
        for k in keys:
            v = counts.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
        return 0

    if isinstance(counts.get("rows_written"), (int, float)):
        written = int(counts["rows_written"])
    else:
        written = sum(int(counts[k]) for k in _WRITTEN_KEYS if isinstance(counts.get(k), (int, float)))
    return {
        "rows_written": written,
        "rows_quarantined": first_int(_QUARANTINE_KEYS),
        "coins_updated": first_int(_COIN_KEYS),
    }


class Reporter(Protocol):
    def step_started(self, name: str) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...


class _Silent:
    def step_started(self, name: str) -> None:
        return None

    def step_finished(self, result: StepResult) -> None:
        return None


def failures_of(counts: dict[str, Any]) -> dict[str, str]:
    """Coins that failed in a step: `failed` as {coin: message}, or `failures` when `failed` is a number."""
    out: dict[str, str] = {}
    for key in ("failed", "failures"):
        value = counts.get(key)
        if isinstance(value, dict):
            out.update({str(k): str(v) for k, v in value.items()})
    return out


def outcome_of(counts: dict[str, Any]) -> str:
    status = counts.get("status")
    if status in ("success", "partial", "skipped", "failed"):
        return str(status)
    failed = counts.get("failed")
    if failures_of(counts) or (isinstance(failed, int) and not isinstance(failed, bool) and failed > 0):
        return "partial"
    return "success"


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, KallosError) else f"{type(exc).__name__}: {exc}"
    return redact(text)  # the summary and the ledger show it: docs/decisions.md#D50


async def run_steps(
    steps: Sequence[Step], ledger: Ledger, reporter: Reporter | None = None
) -> list[StepResult]:
    """Run `steps` in order, each isolated; record each in the ledger; return their results."""
    reporter = reporter or _Silent()
    results: dict[str, StepResult] = {}
    for step in steps:
        broken = [r for r in step.requires if r in results and results[r].status == "failed"]
        reporter.step_started(step.name)
        started = ledger.start_step(step.name)
        t0 = time.perf_counter()
        counts: dict[str, Any] = {}
        error: str | None = None
        fatal: ConfigError | None = None
        if step.skip_reason is not None or broken:
            reason = step.skip_reason or f"skipped because step(s) {', '.join(broken)} failed"
            counts = {"status": "skipped", "reason": reason}
            status = "skipped"
        else:
            try:
                value = step.fn()
                if inspect.isawaitable(value):
                    value = await value
                counts = dict(value or {})
                status = outcome_of(counts)
                if status == "failed":
                    error = str(counts.get("error") or "step reported failure")
            except Exception as exc:  # noqa: BLE001 - one step's failure must not stop the others
                if isinstance(exc, ConfigError):
                    fatal = exc  # a configuration error fails every step alike: stop, exit 78 (decisions.md#D59)
                status, error = "failed", _error_text(exc)
                log.error(
                    "step failed",
                    exc_info=not isinstance(exc, KallosError),
                    extra={"step": step.name, "run_id": ledger.run_id, "error": error},
                )
        duration = time.perf_counter() - t0
        counts.setdefault("duration_seconds", round(duration, 3))
        failed = failures_of(counts)
        if status == "partial" and error is None and failed:
            error = f"{len(failed)} coin(s) failed: " + "; ".join(
                f"{k}: {v}" for k, v in list(failed.items())[:5]
            )
        result = StepResult(step.name, status, counts, redact(error) if error else None, duration)
        results[step.name] = result
        ledger.finish_step(step.name, started, status, counts, result.error)
        log.info(
            "step finished",
            extra={
                "step": step.name,
                "status": status,
                "run_id": ledger.run_id,
                "duration_seconds": round(duration, 3),
            },
        )
        reporter.step_finished(result)
        if fatal is not None:
            raise fatal
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


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a step function with the keyword arguments it accepts (steps differ in extras like run_id)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})
