"""Reading while a run writes: DuckDB's one-writer file and PostgreSQL's read-only transactions."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from starlette.testclient import TestClient

from kallos.errors import StoreBusyError
from kallos.store import open_store
from kallos.web.app import create_app

from .conftest import make_settings

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
con.execute("SELECT 1")
print("holding", flush=True)
if sys.argv[3] == "stdin":
    sys.stdin.readline()
else:
    time.sleep(float(sys.argv[3]))
"""


def hold_file(url: str, mode: str = "rw", until: str = "stdin") -> subprocess.Popen:
    """Another process holding the DuckDB file: for writing, as `kallos run` does, or read-only (a dashboard)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, url.removeprefix("duckdb:///"), mode, until], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def release(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_pages_show_the_last_known_state_while_a_run_holds_the_file(dashboard_db):
    with TestClient(create_app(make_settings(dashboard_db))) as c:
        before = c.get("/api/overview").json()
        assert "kallos_store_busy 0.0" in c.get("/metrics").text
        proc = hold_file(dashboard_db)
        try:
            busy = c.get("/api/overview").json()
            assert busy["state"] == "busy" and busy["data"] == before["data"] and busy["as_of"] == before["as_of"]
            page = c.get("/")
            assert page.status_code == 200 and 'id="busy-banner"' in page.text and "last known state" in page.text
            unseen = c.get("/signals")  # never read before: nothing to show but the reason
            assert unseen.status_code == 503 and "Store busy" in unseen.text
            metrics = c.get("/metrics").text
            assert "kallos_store_busy 1.0" in metrics and "kallos_step_duration_seconds" in metrics
        finally:
            release(proc)
        assert c.get("/api/overview").json()["state"] == "ok"
        assert "kallos_store_busy 0.0" in c.get("/metrics").text


def test_a_reader_never_waits_and_a_writer_waits_for_a_reader(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    store = open_store(url)
    store.init()
    store.close()
    proc = hold_file(url)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError):
            open_store(url, read_only=True)
        assert time.monotonic() - t0 < 2
    finally:
        release(proc)
    # A run starting while a dashboard (another process) reads: it retries for a moment instead of failing.
    reader = hold_file(url, "ro", "0.5")
    try:
        writer = open_store(url)
        writer.close()
    finally:
        reader.wait(timeout=30)


@pytest.mark.postgres
def test_postgres_reads_are_read_only_transactions(pg_store, pg_url, pg_schema):
    from kallos.errors import StoreWriteError
    from kallos.pipeline.ledger import Ledger

    ledger = Ledger(pg_store, "run")
    ledger.start_run()
    ledger.finish_run("success", {"rows_written": 3})
    url = f"{pg_url}?schema={pg_schema}"
    ro = open_store(url, read_only=True)
    try:
        assert ro.scalar("SHOW default_transaction_read_only") == "on"
        with pytest.raises(StoreWriteError, match="read-only"):
            ro.execute("DELETE FROM pipeline_runs")
    finally:
        ro.close()
    with TestClient(create_app(make_settings(url))) as c:
        runs = c.get("/api/overview").json()["data"]["runs"]
        assert [r["status"] for r in runs] == ["success"]
        for path in ("/", "/runs", "/quality", "/market", "/index", "/signals", "/metrics"):
            assert c.get(path).status_code == 200, path
