"""`--timeframe` on the commands: bad values exit 2 naming 1h/1d/1w; hourly backfill through the runner; the
planner prices hourly history and refuses what the plan cannot serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kallos.cli.main import main
from kallos.fake.testing import fake_coingecko, small_market
from kallos.store import open_store


@pytest.mark.parametrize(
    "argv",
    [
        ["market", "backfill", "--timeframe", "4h"],
        ["plan", "backfill", "--timeframe", "15m"],
        ["indicators", "compute", "--timeframe", "1m"],
        ["signals", "generate", "-t", "daily"],
        ["export", "daily_market_data", "--timeframe", "1y"],
    ],
)
def test_an_unknown_timeframe_exits_2_with_the_accepted_values(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())  # rich wraps the message in a box
    assert "accepted values: 1h, 1d, 1w" in err


def test_hourly_backfill_weekly_bars_and_the_planner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'tf.duckdb'}"
    monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "100000")
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    with fake_coingecko(dataset=small_market(n_coins=5), plan="demo", api_key="k", set_env=True):
        assert main(["coins", "sync"]) == 0
        capsys.readouterr()
        assert main(["plan", "backfill", "--timeframe", "1h", "--coins", "bitcoin", "--since", "2023-01-01"]) == 4
        err = " ".join(capsys.readouterr().err.replace("│", " ").split())
        assert "demo plan serves hourly data for the past 365 days" in err
        assert main(["plan", "backfill", "-t", "1h", "--coins", "bitcoin,ethereum", "--json"]) == 0
        est = json.loads(capsys.readouterr().out)
        assert est["by_endpoint"] == {"/coins/{id}/market_chart/range": 10} and est["credits"] == 10
        argv = ["market", "backfill", "-t", "1h", "--coins", "bitcoin", "--since", "2024-12-01", "--no-progress"]
        assert main(argv) == 0
        assert main(["market", "backfill", "--coins", "bitcoin", "--no-progress", "--since", "2024-10-01"]) == 0
        assert main(["market", "backfill", "-t", "1w"]) == 0
    store = open_store(url)
    try:
        hours = store.read("hourly_market_data", coins=["bitcoin"])
        weeks = store.read("weekly_market_data", coins=["bitcoin"])
        steps = store.query("SELECT step, status FROM pipeline_steps ORDER BY started_at")
    finally:
        store.close()
    assert len(hours) >= 30 * 24 and hours["hour"].min() == hours["hour"].min().floor("D")
    assert len(weeks) >= 12 and (weeks["date"].dt.day_of_week == 0).all() and weeks["bar_days"].max() == 7
    assert {"hourly", "weekly"} <= set(steps["step"]) and set(steps["status"]) == {"success"}
