"""`kallos db init|status` on both stores, and the exit codes of bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kallos.cli.main import main
from kallos.store import open_store
from kallos.store.migrations import LATEST


def test_db_init_is_idempotent_and_status_shows_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'db.duckdb'}"
    assert main(["db", "init", "--database-url", url]) == 0
    assert main(["db", "init", "--database-url", url]) == 0
    assert main(["db", "status", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert f"schema version: {LATEST}" in out and "daily_market_data" in out


def test_default_database_url_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALLOS_DATABASE_URL", f"duckdb:///{tmp_path / 'env.duckdb'}")
    assert main(["db", "init"]) == 0
    assert (tmp_path / "env.duckdb").exists()


@pytest.mark.postgres
def test_db_init_on_postgresql(pg_url: str, pg_schema: str) -> None:
    assert main(["db", "init", "--database-url", f"{pg_url}?schema={pg_schema}"]) == 0
    store = open_store(pg_url, schema=pg_schema)
    try:
        assert store.status()["version"] == LATEST
    finally:
        store.close()


def test_bad_setting_exits_78(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KALLOS_COINGECKO_PLAN", "platinum")
    assert main(["db", "status"]) == 78
    assert "KALLOS_COINGECKO_PLAN" in capsys.readouterr().err


def test_unsupported_url_exits_78(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "init", "--database-url", "sqlite:///x.db"]) == 78
    assert "KALLOS_DATABASE_URL" in capsys.readouterr().err


def test_usage_error_exits_2() -> None:
    assert main(["db", "frobnicate"]) == 2


def test_unreachable_postgres_is_a_clear_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "status", "--database-url", "postgresql://nobody@127.0.0.1:1/none"]) == 4
    assert "cannot connect to PostgreSQL" in capsys.readouterr().err
