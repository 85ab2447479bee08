"""The commands: `kallos coins sync|details`, `kallos market backfill|update|gaps`, `kallos plan backfill|daily`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kallos.cli.main import main
from kallos.fake.testing import fake_coingecko, small_market
from kallos.store import open_store


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "100000")
    monkeypatch.setenv("KALLOS_RATE_LIMIT_DIR", str(tmp_path / "rl"))
    monkeypatch.setenv("KALLOS_DATABASE_URL", f"duckdb:///{tmp_path / 'cli.duckdb'}")
    with fake_coingecko(dataset=small_market(), plan="pro", set_env=True) as srv:
        yield srv


def last_json(out: str) -> dict:
    start = out.index("{")
    return json.loads(out[start:])


def test_commands_end_to_end(env, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    srv = env
    assert main(["coins", "sync"]) == 0
    assert "coins synced" in capsys.readouterr().out
    assert main(["coins", "details", "--coins", "bitcoin,ethereum"]) == 0
    capsys.readouterr()

    # The dry run makes no call and predicts the backfill's chart calls (candles: an upper bound).
    srv.clear_requests()
    assert main(["plan", "backfill", "--coins", "bitcoin,ethereum", "--json"]) == 0
    estimate = last_json(capsys.readouterr().out)
    assert srv.requests == []
    assert estimate["plan"] == "pro" and estimate["coins_to_fetch"] == 2
    assert estimate["by_endpoint"]["/coins/{id}/market_chart/range"] == 2
    assert main(["market", "backfill", "--coins", "bitcoin,ethereum", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "backfill:" in out and "status=success" in out
    made = srv.count("/coins/")
    assert made == srv.count("/coins/bitcoin/") + srv.count("/coins/ethereum/")
    assert srv.count("/coins/bitcoin/market_chart/range") == 1
    assert made <= estimate["calls"]
    assert main(["plan", "backfill", "--json"]) == 0  # the tracked coins are complete: nothing to do
    assert last_json(capsys.readouterr().out)["calls"] == 0

    assert main(["market", "gaps", "--json"]) == 0
    gaps = capsys.readouterr().out
    assert '"coin_id": "bitcoin"' in gaps and '"holes": 0' in gaps
    assert main(["market", "gaps"]) == 0
    table = capsys.readouterr().out
    assert "bitcoin" in table and "0 with holes" in table

    # A coin that does not exist makes the run partial (exit 3) without stopping the others.
    assert main(["market", "backfill", "--coins", "solana,no-such-coin", "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert "no-such-coin" in err
    assert main(["market", "update", "--no-progress"]) == 0
    assert "update:" in capsys.readouterr().out
    # The daily planner (docs/decisions.md#D121): every coin is final, so the next update is the sweep alone.
    srv.clear_requests()
    assert main(["plan", "daily", "--json"]) == 0
    daily = last_json(capsys.readouterr().out)
    assert srv.requests == []  # the rate is configured: no /key, and no market data is asked
    assert daily["mode"] == "mixed" and daily["coins"] == 3 == daily["exact_coins"]
    assert daily["calls"] == 1 == daily["by_endpoint"]["/coins/markets"] and daily["coins_to_fetch"] == 0
    assert daily["steady_calls"] == daily["chart_mode_calls"] == 7  # 1 page + 3 x (chart + candles)
    assert main(["plan", "daily"]) == 0
    assert "0.333 calls per coin per day" in capsys.readouterr().out
    store = open_store(f"duckdb:///{tmp_path / 'cli.duckdb'}")
    try:
        assert set(store.read("daily_market_data")["coin_id"]) == {"bitcoin", "ethereum", "solana"}
    finally:
        store.close()


def test_usage_errors(env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["market", "backfill", "--coins", "bitcoin", "--top", "3"]) == 2
    assert main(["market", "backfill", "--since", "yesterday"]) == 2
    assert main(["market", "backfill", "--no-progress"]) == 4  # nothing tracked and no coins named
    assert "no coins are tracked" in capsys.readouterr().err


def test_plan_prices_the_coins_that_exist_at_the_rate_the_client_uses(env, monkeypatch, capsys) -> None:
    """Issue 13 #7: `--top 100` priced 100 coins where the API lists fewer, at the plan's default 500/min where
    /key says 1000."""
    srv = env
    monkeypatch.delenv("KALLOS_RATE_LIMIT_PER_MINUTE")  # pro: the client reads its rate from /key
    srv.clear_requests()
    assert main(["plan", "backfill", "--top", "100", "--json"]) == 0
    estimate = last_json(capsys.readouterr().out)
    asked = {r.path.split("?")[0].split("/api/v3")[-1].rstrip("/") for r in srv.requests}
    assert asked <= {"/key", "/coins/markets"}  # only what the backfill itself asks first
    assert estimate["rate_per_minute"] == 1000  # what /key said, not the plan's default 500
    assert 0 < estimate["listed"] < 100 and estimate["coins_to_fetch"] == estimate["listed"]
    chart = estimate["by_endpoint"]["/coins/{id}/market_chart/range"]
    assert chart == estimate["listed"]
    assert main(["plan", "backfill", "--top", "100"]) == 0
    assert "fewer than --top 100" in " ".join(capsys.readouterr().out.split())
    # what the estimate priced is what the backfill fetches
    monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "100000")
    srv.clear_requests()
    assert main(["market", "backfill", "--top", "100", "--no-progress"]) == 0
    assert sum("market_chart/range" in r.path for r in srv.requests) == chart
