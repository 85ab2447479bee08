"""The run ledger: every run and every step recorded in the store (`pipeline_runs`, `pipeline_steps`).

A row is written when a run or step starts (status `running`) and rewritten when it ends, so a run killed half
way leaves a visible `running` row with its start time rather than nothing. Counts are stored as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import uuid
from typing import Any

import pandas as pd

import kallos
from kallos import clock
from kallos.log import redact
from kallos.store import Store

RUNS = "pipeline_runs"
STEPS = "pipeline_steps"
STATUSES = ("running", "success", "partial", "failed", "skipped")


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: the UTC start time, then random hex (two runs in the same second still differ)."""
    now = now or clock.utcnow()
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _json(counts: dict[str, Any] | None) -> str | None:
    if counts is None:
        return None
    return redact(json.dumps(counts, sort_keys=True, default=str))


def _error(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return redact(text)[:4000]  # docs/decisions.md#D50: no secret, in any encoding, reaches the database


class Ledger:
    """Writes one run's rows (timestamps from `kallos.clock`)."""

    def __init__(self, store: Store, command: str, run_id: str | None = None) -> None:
        self.store = store
        self.command = command
        self.run_id = run_id or new_run_id()
        self.started_at: dt.datetime | None = None

    def start_run(self) -> str:
        self.started_at = _wall()
        self.store.upsert(
            RUNS,
            pd.DataFrame(
                [
                    {
                        "run_id": self.run_id,
                        "command": self.command,
                        "started_at": self.started_at,
                        "status": "running",
                        "host": socket.gethostname(),
                        "version": kallos.__version__,
                    }
                ]
            ),
        )
        return self.run_id

    def finish_run(
        self, status: str, counts: dict[str, Any] | None = None, error: BaseException | str | None = None
    ) -> None:
        _check(status)
        self.store.upsert(
            RUNS,
            pd.DataFrame(
                [
                    {
                        "run_id": self.run_id,
                        "command": self.command,
                        "started_at": self.started_at or _wall(),
                        "finished_at": _wall(),
                        "status": status,
                        "counts": _json(counts),
                        "error": _error(error),
                    }
                ]
            ),
        )

    def start_step(self, step: str) -> dt.datetime:
        started = _wall()
        self.store.upsert(
            STEPS,
            pd.DataFrame([{"run_id": self.run_id, "step": step, "started_at": started, "status": "running"}]),
        )
        return started

    def finish_step(
        self,
        step: str,
        started_at: dt.datetime,
        status: str,
        counts: dict[str, Any] | None = None,
        error: BaseException | str | None = None,
    ) -> None:
        _check(status)
        self.store.upsert(
            STEPS,
            pd.DataFrame(
                [
                    {
                        "run_id": self.run_id,
                        "step": step,
                        "started_at": started_at,
                        "finished_at": _wall(),
                        "status": status,
                        "counts": _json(counts),
                        "error": _error(error),
                    }
                ]
            ),
        )


def _check(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown ledger status {status!r}; expected one of {STATUSES}")


def _wall() -> dt.datetime:
    # The injectable clock, so that the schedule rules (universe weekly) compare ledger times with "today" in
    # one
    # frame of reference under --now; durations are measured separately with a monotonic timer.
    return clock.utcnow()


def close_interrupted(store: Store, current_run_id: str) -> int:
    """Mark runs and steps left `running` by a process that died as `failed` ("interrupted").

    Called by a run that holds the pipeline lock: no other run can be alive, so a `running` row is a leftover
    (a kill, a crash, a power cut). Returns how many runs were closed.
    """
    note = "interrupted: the process ended before the run finished (killed or crashed); the next run resumed"
    params = {"r": current_run_id, "e": note, "now": clock.utcnow()}
    n = int(
        store.scalar(
            f"SELECT count(*) FROM {RUNS} WHERE status = 'running' AND run_id <> :r", {"r": current_run_id}
        )
    )
    if n:
        with store.transaction():
            store.execute(
                f"UPDATE {STEPS} SET status = 'failed', error = :e, finished_at = :now "
                "WHERE status = 'running' AND run_id <> :r",
                params,
            )
            store.execute(
                f"UPDATE {RUNS} SET status = 'failed', error = :e, finished_at = :now "
                "WHERE status = 'running' AND run_id <> :r",
                params,
            )
    return n


def last_success(store: Store, step: str) -> dt.datetime | None:
    """When `step` last finished with success (or partial: it did its work for most coins)."""
    value = store.scalar(
        f"SELECT max(finished_at) FROM {STEPS} WHERE step = :step AND status IN ('success', 'partial')",
        {"step": step},
    )
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def recent_runs(store: Store, limit: int = 10) -> pd.DataFrame:
    return store.query(
        f"SELECT run_id, command, started_at, finished_at, status, counts, error FROM {RUNS} "
        "ORDER BY started_at DESC LIMIT :n",
        {"n": int(limit)},
    )


def run_steps(store: Store, run_id: str) -> pd.DataFrame:
    return store.query(
        f"SELECT step, started_at, finished_at, status, counts, error FROM {STEPS} "
        "WHERE run_id = :r ORDER BY started_at",
        {"r": run_id},
    )
