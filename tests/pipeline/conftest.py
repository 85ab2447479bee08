"""Pipeline fixtures: a fake CoinGecko on loopback, a store backfilled once per session copied per test."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kallos import clock

KEY = "test-key"
N_COINS = 12
# The small market: four years, so the index (3 years of history required) has about a year of months.
MARKET = {"seed": 7, "n_coins": N_COINS, "start": "2021-01-01", "end": "2024-12-31"}
BACKFILL_NOW = dt.datetime(2024, 11, 20, 15, 0, tzinfo=dt.UTC)  # a Wednesday
RUN_NOW = dt.datetime(2024, 12, 2, 15, 0, tzinfo=dt.UTC)  # the next Monday after the November month end


def dataset():
    from kallos.fake.testing import small_market

    return small_market(**MARKET)


def pipeline_env(mp: pytest.MonkeyPatch, url: str, server_url: str, now: dt.datetime) -> None:
    for name in list(os.environ):
        if (name.startswith("KALLOS_") and name != "KALLOS_TEST_PG_URL") or name == "COINGECKO_API_KEY":
            mp.delenv(name, raising=False)
    mp.setenv("KALLOS_DATABASE_URL", url)
    mp.setenv("KALLOS_COINGECKO_BASE_URL", server_url)
    mp.setenv("KALLOS_COINGECKO_PLAN", "pro")
    mp.setenv("COINGECKO_API_KEY", KEY)
    mp.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "100000")
    mp.setenv("KALLOS_NOW", now.isoformat())
    mp.setenv("KALLOS_LOG_LEVEL", "WARNING")
    from kallos.settings import get_settings

    get_settings.cache_clear()


def backfill(url: str, server, now: dt.datetime = BACKFILL_NOW):
    """A first load of every coin through the pipeline's backfill mode (what the demo does)."""
    from kallos.pipeline.run import RunOptions, run_pipeline
    from kallos.settings import load_settings

    server.now = now
    clock.set_now(now)
    return run_pipeline(
        load_settings(), RunOptions(mode="backfill", top=N_COINS, include_inactive=True), command="backfill"
    )


@pytest.fixture
def fake_server() -> Iterator:
    from kallos.fake import FakeCoinGecko

    srv = FakeCoinGecko(dataset=dataset(), plan="pro", api_key=KEY, port=0)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def backfilled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file after a backfill at BACKFILL_NOW (made once; tests copy it)."""
    from kallos.fake import FakeCoinGecko

    path = tmp_path_factory.mktemp("template") / "kallos.duckdb"
    srv = FakeCoinGecko(dataset=dataset(), plan="pro", api_key=KEY, port=0).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            pipeline_env(mp, f"duckdb:///{path}", srv.url, BACKFILL_NOW)
            summary = backfill(f"duckdb:///{path}", srv)
            assert summary.status == "success", summary.steps
    finally:
        srv.stop()
        clock.set_now(None)
    return path


@pytest.fixture
def backfilled(
    backfilled_template: Path, tmp_path: Path, fake_server, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A copy of the backfilled store; the environment points at it and at a fresh fake server at RUN_NOW."""
    target = tmp_path / "run.duckdb"
    shutil.copy(backfilled_template, target)
    url = f"duckdb:///{target}"
    fake_server.now = RUN_NOW
    pipeline_env(monkeypatch, url, fake_server.url, RUN_NOW)
    return url
