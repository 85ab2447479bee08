"""Run telemetry: what each step cost and produced, recorded in the ledger (docs/decisions.md#D90).

The runner snapshots the CoinGecko client's counters before a step and records the difference after it, so
every step gets the same figures whether or not it calls the API, and no step counts its own requests. The
figures live in the step's ledger counts under `telemetry`; the run's counts hold their sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TELEMETRY_FIELDS: tuple[str, ...] = (
    "requests",
    "requests_by_status",
    "credits",
    "retries",
    "rate_limited",
    "rate_limit_wait_seconds",
    "bytes_received",
    "rows_written",
    "rows_quarantined",
)
"""The telemetry of one step, in display order: API requests (total and by HTTP status), credits, retries,
429 answers, seconds waiting on the rate limit, response bytes, rows written and quarantined."""

_SCALARS = ("calls", "credits", "retries", "rate_limited", "bytes_received")


def snapshot(stats: Any) -> dict[str, Any]:
    """A copy of a client's counters (a `ClientStats`), or zeros when there is no client."""
    if stats is None:
        return {"calls": 0, "credits": 0, "retries": 0, "rate_limited": 0, "bytes_received": 0,
                "rate_limit_wait_seconds": 0.0, "by_status": {}}  # fmt: skip
    return {
        **{k: int(getattr(stats, k, 0) or 0) for k in _SCALARS},
        "rate_limit_wait_seconds": float(getattr(stats, "rate_limit_wait_seconds", 0.0) or 0.0),
        "by_status": dict(getattr(stats, "by_status", {}) or {}),
    }


def step_telemetry(
    before: Mapping[str, Any], after: Mapping[str, Any], *, rows_written: int, rows_quarantined: int
) -> dict[str, Any]:
    """The telemetry of one step from two snapshots of the client's counters and the step's row figures."""
    by_status = {
        str(code): int(after["by_status"].get(code, 0)) - int(before["by_status"].get(code, 0))
        for code in sorted(after["by_status"])
    }
    return {
        "requests": after["calls"] - before["calls"],
        "requests_by_status": {k: v for k, v in by_status.items() if v},
        "credits": after["credits"] - before["credits"],
        "retries": after["retries"] - before["retries"],
        "rate_limited": after["rate_limited"] - before["rate_limited"],
        "rate_limit_wait_seconds": round(after["rate_limit_wait_seconds"] - before["rate_limit_wait_seconds"], 3),
        "bytes_received": after["bytes_received"] - before["bytes_received"],
        "rows_written": int(rows_written),
        "rows_quarantined": int(rows_quarantined),
    }


def total(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several steps' telemetry (the run's figures)."""
    out: dict[str, Any] = {k: 0 for k in TELEMETRY_FIELDS}
    out["requests_by_status"] = {}
    out["rate_limit_wait_seconds"] = 0.0
    for t in items:
        for k in TELEMETRY_FIELDS:
            if k == "requests_by_status":
                for code, n in (t.get(k) or {}).items():
                    out[k][str(code)] = out[k].get(str(code), 0) + int(n)
            else:
                out[k] += t.get(k) or 0
    out["rate_limit_wait_seconds"] = round(float(out["rate_limit_wait_seconds"]), 3)
    return out


def complete(t: Mapping[str, Any]) -> dict[str, Any]:
    """Every telemetry field present (zeros for those an older ledger row lacks)."""
    return {**total(()), **t}


def of_counts(counts: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger row's telemetry (empty for rows written before telemetry existed)."""
    value = counts.get("telemetry")
    return dict(value) if isinstance(value, Mapping) else {}


def status_text(by_status: Mapping[str, Any] | None) -> str:
    """`{"200": 120, "429": 2}` -> `200×120 429×2` (compact, for tables)."""
    if not by_status:
        return "-"
    return " ".join(f"{code}×{n}" for code, n in sorted(by_status.items()))


def human_bytes(n: float | int | None) -> str:
    if not n:
        return "0 B"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
