"""Run telemetry per step (docs/decisions.md#D90): the runner records each step's share of the client's
counters and its rows; `kallos status` shows them; `kallos run --metrics-file` writes Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kallos import clock
from kallos.cli.main import main
from kallos.coingecko.client import ClientStats
from kallos.errors import StoreWriteError
from kallos.pipeline import telemetry
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.pipeline.ledger import Ledger
from kallos.pipeline.ledger import run_steps as ledger_steps
from kallos.pipeline.runner import RunSummary, Step, run_steps
from kallos.settings import load_settings
from kallos.store import open_store


def test_each_step_gets_its_own_share_of_the_client_counters(duck_store):
    stats = ClientStats()

    async def fetch(ctx: StepContext) -> StepOutcome:
        stats.calls += 5
        stats.credits += 4
        stats.retries += 1
        stats.rate_limited += 1
        stats.rate_limit_wait_seconds += 2.5
        stats.bytes_received += 1234
        stats.by_status.update({"200": 4, "429": 1})
        return StepOutcome(rows_written=10, rows_quarantined=2)

    def compute(ctx: StepContext) -> StepOutcome:
        return StepOutcome(rows_written=7)

    async def fetch_again(ctx: StepContext) -> StepOutcome:
        stats.calls += 1
        stats.credits += 1
        stats.bytes_received += 10
        stats.by_status.update({"200": 1})
        raise StoreWriteError("write rejected", table="coins")

    ledger = Ledger(duck_store, "test")
    ledger.start_run()
    ctx = StepContext(store=duck_store, settings=load_settings(), run_id=ledger.run_id, now=clock.utcnow(),
                      client=SimpleNamespace(stats=stats))  # type: ignore[arg-type]  # fmt: skip
    steps = [Step("market", fetch), Step("indicators", compute), Step("details", fetch_again)]
    results = asyncio.run(run_steps(steps, ledger, ctx))
    t = {r.name: r.telemetry for r in results}
    assert t["market"] == {
        "requests": 5, "requests_by_status": {"200": 4, "429": 1}, "credits": 4, "retries": 1, "rate_limited": 1,
        "rate_limit_wait_seconds": 2.5, "bytes_received": 1234, "rows_written": 10, "rows_quarantined": 2,
    }  # fmt: skip
    assert t["indicators"]["requests"] == 0 and t["indicators"]["rows_written"] == 7
    assert t["details"]["requests_by_status"] == {"200": 1} and t["details"]["bytes_received"] == 10  # failed too
    stored = ledger_steps(duck_store, ledger.run_id).set_index("step")["counts"].map(json.loads)
    assert stored["market"]["telemetry"] == t["market"]
    run = RunSummary(ledger.run_id, "test", "partial", results, 1.0).as_counts()["telemetry"]
    assert run["requests"] == 6 and run["requests_by_status"] == {"200": 5, "429": 1} and run["rows_written"] == 17


def test_totals_and_formats():
    assert telemetry.total([]) == telemetry.complete({})
    assert telemetry.status_text({"429": 2, "200": 10}) == "200×10 429×2" and telemetry.status_text({}) == "-"
    assert telemetry.human_bytes(0) == "0 B" and telemetry.human_bytes(2_500_000) == "2.5 MB"


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.slow
def test_run_writes_the_metrics_file_and_status_shows_the_telemetry(backfilled, tmp_path, capsys):
    path = tmp_path / "textfile" / "kallos.prom"
    assert main(["run", "--metrics-file", str(path)]) == 0
    assert not list(path.parent.glob("*.tmp*"))  # written to a temporary file and renamed over
    fams = _families(path.read_text())
    steps = {s.labels["step"] for s in fams["kallos_step_last_success_timestamp_seconds"].samples}
    assert {"market", "indicators", "signals"} <= steps
    requests = {(s.labels["step"], s.labels["status"]): s.value for s in fams["kallos_step_api_requests"].samples}
    assert requests[("market", "200")] > 0
    store = open_store(backfilled)
    try:
        counts = json.loads(store.scalar("SELECT counts FROM pipeline_steps WHERE step = 'market' "
                                         "ORDER BY started_at DESC LIMIT 1"))  # fmt: skip
        left = json.loads(store.scalar("SELECT counts FROM pipeline_runs ORDER BY started_at DESC LIMIT 1"))
    finally:
        store.close()
    assert requests[("market", "200")] == counts["telemetry"]["requests_by_status"]["200"]
    assert {s.name for s in fams["kallos_step_rows_written"].samples} and fams["kallos_step_duration_seconds"].samples
    assert left["api"]["key"]["credits_left"] > 0  # the fake's pro /key
    assert fams["kallos_api_credits_left"].samples[0].value == left["api"]["key"]["credits_left"]
    assert fams["kallos_calls_per_coin_day"].samples[0].value == left["calls_per_coin_day"] > 0
    lag = {s.labels["table"]: s.value for s in fams["kallos_table_freshness_lag_days"].samples}
    assert lag["daily_market_data"] <= 2
    assert "kallos_quality_events" in fams and "kallos_last_run_status" in fams
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "telemetry" in out and "429s" in out and f"200×{counts['telemetry']['requests']}" in out
