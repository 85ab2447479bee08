"""Prometheus metrics from the run ledger and the store (docs/decisions.md#D94).

One collector reads the store when scraped (`kallos serve`'s /metrics) or once after a run (`kallos run
--metrics-file`, for node_exporter's textfile collector), so both expose the same families. The figures are
the latest ledger row of each step, not counters kept in a process: a cron job has no process to keep them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kallos import clock
from kallos.pipeline.ledger import RUNS, STEPS
from kallos.pipeline.status import counts_of, freshness
from kallos.pipeline.telemetry import of_counts
from kallos.store import Store

PREFIX = "kallos"


def _epoch(value: Any) -> float | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.timestamp()


def _g(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels or ("step",)))


def collect_families(store: Store, *, today: dt.date | None = None) -> list[Metric]:
    """Every Kallos metric family, read from `store` now."""
    today = today or clock.today()
    g = {
        "success": _g("step_last_success_timestamp_seconds", "When the step last finished with success or partial"),
        "status": _g("step_last_status", "1 for the status of the step's latest run", "step", "status"),
        "duration": _g("step_duration_seconds", "Duration of the step's latest run"),
        "rows": _g("step_rows_written", "Rows written by the step's latest run"),
        "quarantined": _g("step_rows_quarantined", "Rows quarantined by the step's latest run"),
        "requests": _g("step_api_requests", "CoinGecko requests of the step's latest run", "step", "status"),
        "rate_limited": _g("step_api_rate_limited", "HTTP 429 answers in the step's latest run"),
        "retries": _g("step_api_retries", "Retries in the step's latest run"),
        "credits": _g("step_api_credits", "Credits used by the step's latest run"),
        "wait": _g("step_rate_limit_wait_seconds", "Seconds the step's latest run waited on the rate limit"),
        "bytes": _g("step_api_bytes_received", "Response bytes the step's latest run received"),
    }
    steps = store.query(
        f"SELECT s.step, s.started_at, s.finished_at, s.status, s.counts FROM {STEPS} s JOIN ("
        f"SELECT step, max(started_at) AS started_at FROM {STEPS} WHERE status <> 'running' GROUP BY step"
        ") m ON m.step = s.step AND m.started_at = s.started_at ORDER BY s.step"
    )
    for s in steps.itertuples(index=False):
        counts = counts_of(s.counts)
        t = of_counts(counts)
        name = str(s.step)
        g["status"].add_metric([name, str(s.status)], 1.0)
        secs = counts.get("duration_seconds")
        if isinstance(secs, (int, float)):
            g["duration"].add_metric([name], float(secs))
        g["rows"].add_metric([name], float(t.get("rows_written", counts.get("rows_written")) or 0))
        g["quarantined"].add_metric([name], float(t.get("rows_quarantined", counts.get("rows_quarantined")) or 0))
        for code, n in (t.get("requests_by_status") or {}).items():
            g["requests"].add_metric([name, str(code)], float(n))
        g["rate_limited"].add_metric([name], float(t.get("rate_limited", 0)))
        g["retries"].add_metric([name], float(t.get("retries", 0)))
        g["credits"].add_metric([name], float(t.get("credits", counts.get("api_credits", 0)) or 0))
        g["wait"].add_metric([name], float(t.get("rate_limit_wait_seconds", 0.0)))
        g["bytes"].add_metric([name], float(t.get("bytes_received", 0)))
    last_ok = store.query(
        f"SELECT step, max(finished_at) AS at FROM {STEPS} WHERE status IN ('success', 'partial') GROUP BY step "
        "ORDER BY step"
    )
    for r in last_ok.itertuples(index=False):
        at = _epoch(r.at)
        if at is not None:
            g["success"].add_metric([str(r.step)], at)
    out: list[Metric] = list(g.values())
    out += _run_families(store)
    out += _freshness_families(store, today)
    quality = GaugeMetricFamily(f"{PREFIX}_quality_events", "Data-quality events stored, by reason and action",
                          labels=["reason", "action"])  # fmt: skip
    for r in store.query(
        "SELECT reason, action, count(*) AS n FROM data_quality_events GROUP BY 1, 2 ORDER BY 1, 2"
    ).itertuples(index=False):
        quality.add_metric([str(r.reason), str(r.action)], float(r.n))
    out.append(quality)
    return out


def _run_families(store: Store) -> list[Metric]:
    last = store.query(
        f"SELECT started_at, finished_at, status, counts FROM {RUNS} WHERE status <> 'running' "
        "ORDER BY started_at DESC LIMIT 1"
    )
    status = GaugeMetricFamily(f"{PREFIX}_last_run_status", "1 for the status of the latest finished run",
                         labels=["status"])  # fmt: skip
    finished = GaugeMetricFamily(f"{PREFIX}_last_run_finished_timestamp_seconds", "When the latest run finished")
    duration = GaugeMetricFamily(f"{PREFIX}_last_run_duration_seconds", "Duration of the latest finished run")
    credits_left = GaugeMetricFamily(
        f"{PREFIX}_api_credits_left", "Monthly API credits left, from /key on paid plans (latest run that read it)"
    )
    if len(last):
        r = next(last.itertuples(index=False))
        status.add_metric([str(r.status)], 1.0)
        a, b = _epoch(r.started_at), _epoch(r.finished_at)
        if b is not None:
            finished.add_metric([], b)
        if a is not None and b is not None:
            duration.add_metric([], b - a)
    key = store.query(f"SELECT counts FROM {RUNS} WHERE counts LIKE '%credits_left%' ORDER BY started_at DESC LIMIT 1")
    if len(key):
        left = (counts_of(key["counts"].iloc[0]).get("api") or {}).get("key", {}).get("credits_left")
        if isinstance(left, (int, float)):
            credits_left.add_metric([], float(left))
    per_coin = GaugeMetricFamily(
        f"{PREFIX}_calls_per_coin_day",
        "API calls of the market step per coin it keeps, latest run that had one (docs/decisions.md#D121)",
    )
    market = store.query(
        f"SELECT counts FROM {RUNS} WHERE counts LIKE '%calls_per_coin_day%' ORDER BY started_at DESC LIMIT 1"
    )
    if len(market):
        value = counts_of(market["counts"].iloc[0]).get("calls_per_coin_day")
        if isinstance(value, (int, float)):
            per_coin.add_metric([], float(value))
    return [status, finished, duration, credits_left, per_coin]


def _freshness_families(store: Store, today: dt.date) -> list[Metric]:
    lag = GaugeMetricFamily(f"{PREFIX}_table_freshness_lag_days", "Days since the newest row of the table",
                      labels=["table"])  # fmt: skip
    rows = GaugeMetricFamily(f"{PREFIX}_table_rows", "Rows in the table", labels=["table"])
    for f in freshness(store, today).itertuples(index=False):
        rows.add_metric([str(f.table)], float(f.rows))
        if f.age_days is not None and not pd.isna(f.age_days):
            lag.add_metric([str(f.table)], float(f.age_days))
    coins = GaugeMetricFamily(f"{PREFIX}_coins_by_lag_days", "Coins by days since their newest close",
                        labels=["lag"])  # fmt: skip
    frame = store.query('SELECT coin_id, max("date") AS last_date FROM daily_market_data GROUP BY coin_id')
    if len(frame):
        days = (pd.Timestamp(today) - pd.to_datetime(frame["last_date"])).dt.days
        for label, mask in (("le_1", days <= 1), ("2_7", days.between(2, 7)), ("gt_7", days > 7)):
            coins.add_metric([label], float(mask.sum()))
    return [lag, rows, coins]


class StoreCollector(Collector):
    """A prometheus_client collector over a function returning the families (the dashboard's cached reader)."""

    def __init__(self, families: Any) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


def registry_for(families: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(families))
    return registry


def write_metrics_file(store: Store, path: Path | str, *, today: dt.date | None = None) -> Path:
    """Write the metrics for node_exporter's textfile collector, atomically (a temporary file renamed over)."""
    families = collect_families(store, today=today)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(target), registry_for(lambda: families))
    return target
