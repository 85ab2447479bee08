"""Dashboard fixtures: a store the tests fill (the demo's pipeline on a small simulated market, plus a failed
run and quality events), the app over it, and a live server on a free loopback port for the browser."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kallos import clock

MARKET = {"seed": 11, "n_coins": 8, "start": "2021-01-01", "end": "2024-12-31"}
TOKEN = "test-dashboard-token-0123456789"


def fill_extra(url: str) -> None:
    """What a demo alone does not have: a failed run with an error, and quality events on two coins."""
    from kallos.pipeline.ledger import Ledger
    from kallos.store import open_store

    store = open_store(url)
    try:
        coins = store.query("SELECT coingecko_id FROM coins ORDER BY coingecko_id LIMIT 2")["coingecko_id"].tolist()
        ledger = Ledger(store, "run")
        ledger.start_run()
        started = ledger.start_step("market")
        ledger.finish_step(
            "market", started, "failed", {"telemetry": {"requests": 7, "requests_by_status": {"200": 4, "429": 3},
            "credits": 4, "retries": 3, "rate_limited": 3, "rate_limit_wait_seconds": 61.5, "bytes_received": 2048,
            "rows_written": 0, "rows_quarantined": 0}}, "RetryBudgetExceeded: CoinGecko call failed after 4 attempts",
        )  # fmt: skip
        ledger.finish_run("failed", {"rows_written": 0}, "market: RetryBudgetExceeded")
        events = pd.DataFrame(
            [
                {"coin_id": coins[i % 2], "date": dt.date(2024, 1 + i % 6, 1 + i), "source": "/coins/{id}/market_chart",
                 "field": "row" if i % 3 else "market_cap",
                 "reason": "test_negative_price" if i % 3 else "test_zero_cap",
                 "action": "quarantined" if i % 3 else "nulled", "raw": json.dumps({"price": -1.0 * i}),
                 "detail": f"event {i}", "run_id": ledger.run_id}
                for i in range(12)
            ]
        )  # fmt: skip
        store.upsert("data_quality_events", events)
    finally:
        store.close()


@pytest.fixture(scope="session")
def dashboard_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filled DuckDB file, made once per session (tests copy it)."""
    from kallos.pipeline.demo import DemoMarket, run_demo

    out = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KALLOS_RATE_LIMIT_DIR", str(out / "ratelimit"))
        mp.setenv("KALLOS_LOG_LEVEL", "WARNING")
        result = run_demo(out, market=DemoMarket(**MARKET))
    clock.set_now(None)
    assert result.summary.status == "success", result.summary.steps
    db = out / "demo.duckdb"
    fill_extra(f"duckdb:///{db}")
    (out / "now.txt").write_text(result.server_now.isoformat())
    return db


@pytest.fixture
def dashboard_db(dashboard_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "dash.duckdb"
    shutil.copy(dashboard_template, target)
    clock.set_now(dt.datetime.fromisoformat((dashboard_template.parent / "now.txt").read_text()))
    return f"duckdb:///{target}"


def make_settings(url: str, **extra: object):
    from kallos.settings import load_settings

    return load_settings(database_url=url, dashboard_refresh_seconds=30, **extra)


@pytest.fixture
def client(dashboard_db: str):
    from starlette.testclient import TestClient

    from kallos.web.app import create_app

    with TestClient(create_app(make_settings(dashboard_db)), raise_server_exceptions=False) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(dashboard_db: str) -> Iterator[str]:
    """uvicorn serving the dashboard on a free loopback port, in a thread."""
    import uvicorn

    from kallos.web.app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(make_settings(dashboard_db)), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
