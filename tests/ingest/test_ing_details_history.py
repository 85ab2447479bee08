"""`kallos plan details-history` and `kallos coins details --history`: priced first, then backfilled from the fake
server's `/coins/{id}/history`, through the runner (ledger), and a rerun costs nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from kallos import clock
from kallos.cli.main import main
from kallos.fake.testing import fake_coingecko, small_market
from kallos.store import open_store


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "100000")
    monkeypatch.setenv("KALLOS_RATE_LIMIT_DIR", str(tmp_path / "rl"))
    monkeypatch.setenv("KALLOS_DATABASE_URL", f"duckdb:///{tmp_path / 'cli.duckdb'}")
    with fake_coingecko(dataset=small_market(), plan="demo", set_env=True) as srv:
        yield srv


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["plan", "details-history", "--json", *args]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_history_backfill_is_priced_clamped_and_idempotent(
    env, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    srv = env
    assert main(["coins", "sync"]) == 0
    assert main(["coins", "details", "--coins", "bitcoin,ethereum"]) == 0  # today's row comes from the refresh
    capsys.readouterr()
    now = clock.utcnow()
    last_final = clock.last_final_day(now)
    since = (last_final - dt.timedelta(days=9)).isoformat()

    srv.clear_requests()
    est = plan(capsys, "--coins", "bitcoin,ethereum", "--since", since)
    assert srv.requests == []  # pricing makes no call
    assert est["calls"] == 20 and not est["clamped"] and est["last_day"] == last_final.isoformat()
    far = plan(capsys, "--coins", "bitcoin", "--since", "2015-01-01")
    assert far["clamped"] and far["calls"] <= 365  # demo: only the past 365 days

    assert main(["coins", "details", "--history", "--since", since, "--coins", "bitcoin,ethereum"]) == 0
    assert "status=success" in capsys.readouterr().out
    calls = lambda: srv.count("/coins/bitcoin/history") + srv.count("/coins/ethereum/history")  # noqa: E731
    assert srv.count("/coins/bitcoin/history") == 10 and calls() == est["calls"]
    store = open_store(f"duckdb:///{tmp_path / 'cli.duckdb'}")
    try:
        rows = store.read("coin_details_history", coins=["bitcoin"])
        runs = store.query("SELECT command FROM pipeline_runs")
    finally:
        store.close()
    history = rows[rows["source"] == "history"]
    assert len(history) == 10 and history["stars"].notna().all()
    assert history["stars"].is_monotonic_increasing  # the fake's repositories grow
    assert "coins details --history" in set(runs["command"])

    srv.clear_requests()
    assert plan(capsys, "--coins", "bitcoin,ethereum", "--since", since)["calls"] == 0
    assert main(["coins", "details", "--history", "--since", since, "--coins", "bitcoin,ethereum"]) == 0
    assert calls() == 0
    assert main(["coins", "details", "--history"]) == 2  # --history needs --since
