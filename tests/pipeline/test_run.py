"""`kallos run` end to end against the fake CoinGecko: the daily workflow, ledger, exit codes and the lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.pipeline.lock import pipeline_lock
from kallos.pipeline.run import STEP_NAMES
from kallos.store import open_store

from .conftest import BACKFILL_NOW, RUN_NOW, backfill, pipeline_env

pytestmark = pytest.mark.slow  # whole pipelines against the fake server: seconds each


def _ledger(url: str):
    store = open_store(url)
    try:
        runs = store.query("SELECT * FROM pipeline_runs ORDER BY started_at, run_id")
        steps = store.query("SELECT * FROM pipeline_steps")
        return runs, steps
    finally:
        store.close()


def test_daily_run_updates_everything_and_is_idempotent(backfilled, capsys):
    store = open_store(backfilled)
    before = store.scalar("SELECT max(date) FROM daily_market_data")
    store.close()
    assert pd.Timestamp(before).date() <= BACKFILL_NOW.date()

    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "coins updated" in out and "API calls" in out and "market calls per coin per day" in out

    store = open_store(backfilled)
    try:
        last = pd.Timestamp(store.scalar("SELECT max(date) FROM daily_market_data")).date()
        assert last == RUN_NOW.date()  # today's 00:00 close is final at 15:00
        assert pd.Timestamp(store.scalar("SELECT max(date) FROM daily_technical_indicators")).date() == last
        assert pd.Timestamp(store.scalar("SELECT max(date) FROM trading_signals")).date() == last
        # the index is valued through the last final day (the November month end rebalanced on the way)
        assert pd.Timestamp(store.scalar("SELECT max(date) FROM daily_index_values")).date() == last
        assert str(pd.Timestamp(store.scalar("SELECT max(selection_date) FROM index_turnover")).date()) == "2024-11-30"
    finally:
        store.close()

    runs, steps = _ledger(backfilled)
    run = runs.iloc[-1]
    assert run["command"] == "run" and run["status"] == "success"
    counts = json.loads(run["counts"])
    assert counts["rows_written"] > 0 and counts["api_calls"] > 0
    mine = steps[steps["run_id"] == run["run_id"]].set_index("step")
    assert set(mine.index) == set(STEP_NAMES)
    assert mine.loc["universe", "status"] == "success"  # Monday
    assert mine.loc["index", "status"] == "success"  # new final days
    market = json.loads(mine.loc["market", "counts"])
    assert market["api_calls"] > 0
    # docs/decisions.md#D121: the market step's calls per coin it keeps, in the step's and the run's counts
    per_coin = market["extra"]["calls_per_coin_day"]
    assert per_coin == round(market["api_calls"] / market["coins_ok"], 4) == counts["calls_per_coin_day"]
    assert f"market calls per coin per day {per_coin:.3f}" in out

    # the same day again: nothing due, nothing new; still success; `--json` prints the summary as JSON
    seen = set(runs["run_id"])
    assert main(["run", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "success" and summary["exit_code"] == 0
    (step,) = [s for s in summary["steps"] if s["name"] == "market"]
    assert summary["totals"]["calls_per_coin_day"] == step["extra"]["calls_per_coin_day"]
    assert step["api_calls"] == step["extra"]["markets_calls"] >= 1  # only the sweep: every coin is final
    runs, steps = _ledger(backfilled)
    (new_id,) = set(runs["run_id"]) - seen  # the pinned clock gives both runs the same start time
    again = steps[steps["run_id"] == new_id].set_index("step")
    assert again.loc["universe", "status"] == "skipped"
    assert json.loads(again.loc["universe", "counts"])["reason"].startswith("not due")
    assert "not due" in json.loads(again.loc["index", "counts"])["reason"]
    assert json.loads(again.loc["market", "counts"])["rows_written"] == 0


def test_status_shows_runs_freshness_and_coverage(backfilled, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "last runs" in out and "backfill" in out and "daily_market_data" in out and "coverage:" in out
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"][0]["command"] == "backfill" and data["runs"][0]["status"] == "success"
    fresh = {f["table"]: f for f in data["freshness"]}
    assert fresh["daily_market_data"]["rows"] > 0
    assert data["coverage"]["coins_with_market_data"] >= 10


def test_partial_failure_exits_3(backfilled, fake_server, monkeypatch, capsys):
    from kallos.fake import Faults

    # bitcoin's history calls fail with HTTP 500 (no retries): that coin fails, the others are updated
    fake_server.faults = Faults(rate_5xx=1.0, paths=("/coins/bitcoin/",))
    monkeypatch.setenv("KALLOS_MAX_RETRIES", "0")
    assert main(["run"]) == 3
    assert "finished with failures in: market" in capsys.readouterr().err
    runs, steps = _ledger(backfilled)
    assert runs.iloc[-1]["status"] == "partial"
    market = steps[(steps["run_id"] == runs.iloc[-1]["run_id"]) & (steps["step"] == "market")].iloc[0]
    assert market["status"] == "partial" and "bitcoin" in market["error"]
    store = open_store(backfilled)
    try:
        last = store.query(
            "SELECT c.coingecko_id AS coin, max(d.date) AS last "
            "FROM daily_market_data d JOIN coins c USING (coin_id) "
            "GROUP BY c.coingecko_id"
        ).set_index("coin")["last"]
    finally:
        store.close()
    assert last["bitcoin"].date() < RUN_NOW.date() and last["ethereum"].date() == RUN_NOW.date()


def test_failure_exits_4(backfilled, monkeypatch, capsys, tmp_path):
    # a port nobody listens on: the API is unreachable
    import socket

    log_file = tmp_path / "logs" / "kallos.jsonl"
    monkeypatch.setenv("KALLOS_LOG_FORMAT", "json")
    monkeypatch.setenv("KALLOS_LOG_FILE", str(log_file))
    monkeypatch.setenv("KALLOS_LOG_LEVEL", "INFO")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("KALLOS_COINGECKO_BASE_URL", f"http://127.0.0.1:{dead}/api/v3")
    monkeypatch.setenv("KALLOS_MAX_RETRIES", "0")
    assert main(["run"]) == 4
    assert "failed" in capsys.readouterr().err
    runs, steps = _ledger(backfilled)
    assert runs.iloc[-1]["status"] == "failed"
    mine = steps[steps["run_id"] == runs.iloc[-1]["run_id"]].set_index("step")["status"]
    assert mine["market"] == "failed" and mine["indicators"] == "skipped" and mine["index"] == "skipped"
    # JSON logs by setting: one object per line, with the run id and step as fields
    records = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    failed = [r for r in records if r["message"] == "step failed"]
    assert failed and failed[0]["run_id"] == runs.iloc[-1]["run_id"] and failed[0]["level"] == "ERROR"
    assert any(r["message"] == "run finished" and r["status"] == "failed" for r in records)


def test_second_run_exits_5_while_the_lock_is_held(backfilled, capsys):
    with pipeline_lock(backfilled, run_id="the-first-run"):
        assert main(["run"]) == 5
    err = capsys.readouterr().err
    assert "another kallos run" in err and "the-first-run" in err
    runs, _ = _ledger(backfilled)
    assert list(runs["command"]) == ["backfill"]  # the refused run wrote nothing


def test_status_says_busy_while_a_run_holds_the_duckdb_file(backfilled, capsys):
    code = (
        "import sys, time\n"
        "from kallos.pipeline.lock import pipeline_lock\n"
        "from kallos.store import open_store\n"
        f"with pipeline_lock({backfilled!r}, run_id='busy-run'):\n"
        f"    s = open_store({backfilled!r})\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert main(["status"]) == 5
        assert "store is busy" in capsys.readouterr().err
        assert main(["run"]) == 5
    finally:
        child.kill()
        child.wait()


@pytest.mark.postgres
def test_full_run_against_postgresql(pg_url, pg_schema, fake_server, monkeypatch, capsys):
    url = f"{pg_url}?schema={pg_schema}"
    pipeline_env(monkeypatch, url, fake_server.url, BACKFILL_NOW)
    assert backfill(url, fake_server).status == "success"
    fake_server.now = RUN_NOW
    monkeypatch.setenv("KALLOS_NOW", RUN_NOW.isoformat())
    store = open_store(pg_url, schema=pg_schema)
    try:
        # a run killed half way (kill -9 while its steps run) ...
        child = subprocess.Popen([sys.executable, "-m", "kallos.cli.main", "run"], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and child.poll() is None:
                if store.scalar("SELECT count(*) FROM pipeline_steps WHERE status = 'running'"):
                    break
                time.sleep(0.02)
            assert child.poll() is None, "the run finished before it could be killed"
        finally:
            child.kill()
            child.wait()
        killed = store.scalar("SELECT run_id FROM pipeline_runs WHERE status = 'running'")
        assert killed is not None
        # ... is resumed by the next run, which marks it interrupted
        assert main(["run"]) == 0
        assert store.scalar("SELECT status FROM pipeline_runs WHERE run_id = :r", {"r": killed}) == "failed"
        assert "interrupted" in store.scalar(
            "SELECT error FROM pipeline_runs WHERE run_id = :r", {"r": killed}
        )
        assert pd.Timestamp(store.scalar("SELECT max(date) FROM daily_market_data")).date() == RUN_NOW.date()
        assert store.scalar("SELECT count(*) FROM daily_technical_indicators") > 0
        assert store.scalar("SELECT count(*) FROM trading_signals") > 0
        assert store.scalar("SELECT count(*) FROM daily_index_values") > 0
        runs = store.query("SELECT command, status FROM pipeline_runs ORDER BY started_at, status")
        assert runs.values.tolist() == [["backfill", "success"], ["run", "failed"], ["run", "success"]]
        # while a run holds the advisory lock, a second one exits 5; status still works on PostgreSQL
        with pipeline_lock(url, run_id="pg-holder"):
            assert main(["run"]) == 5
            assert main(["status"]) == 0
    finally:
        store.close()


def test_first_run_on_an_empty_database_syncs_the_universe_and_says_what_next(
    tmp_path, fake_server, monkeypatch, capsys
):
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    fake_server.now = RUN_NOW
    pipeline_env(monkeypatch, url, fake_server.url, RUN_NOW)
    assert main(["run"]) == 0
    assert "kallos market backfill" in capsys.readouterr().out
    runs, steps = _ledger(url)
    assert runs["status"].tolist() == ["success"]
    status = steps.set_index("step")["status"].to_dict()
    assert (
        status["universe"] == "success" and status["details"] == "skipped" and status["market"] == "skipped"
    )
