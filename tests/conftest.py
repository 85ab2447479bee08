"""Shared fixtures: stores on both backends, the shared real-data folder, a clean environment."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kallos import clock
from kallos.store import Store, open_store

PG_URL = os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Tests never read the developer's settings, .env file or data directory."""
    for name in list(os.environ):
        if name.startswith("KALLOS_") and name != "KALLOS_TEST_PG_URL" or name == "COINGECKO_API_KEY":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KALLOS_DATABASE_URL", f"duckdb:///{tmp_path / 'default.duckdb'}")
    monkeypatch.setenv("KALLOS_RATE_LIMIT_DIR", str(tmp_path / "ratelimit"))
    monkeypatch.chdir(tmp_path)
    from kallos.settings import get_settings

    get_settings.cache_clear()
    yield
    clock.set_now(None)
    get_settings.cache_clear()
    # In-process CLI calls install a log handler on the test's captured stderr, closed once the test ends.
    logger = logging.getLogger("kallos")
    for handler in list(logger.handlers):
        if handler.get_name() == "kallos":
            logger.removeHandler(handler)


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture(scope="session")
def pg_url() -> str:
    problem = _pg_available()
    if problem:
        message = (
            f"PostgreSQL not reachable at {PG_URL} ({problem}); start it, or point KALLOS_TEST_PG_URL at a server"
        )
        if IN_CI:
            pytest.fail(message + " -- required when CI=true")
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    name = f"kt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def pg_store(pg_url: str, pg_schema: str) -> Iterator[Store]:
    store = open_store(pg_url, schema=pg_schema)
    store.init()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def pg_partitioned_store(pg_url: str, pg_schema: str) -> Iterator[Store]:
    """PostgreSQL with the daily fact tables range-partitioned by year (the scale-out layout)."""
    store = open_store(pg_url, schema=pg_schema)
    store.init(partitioned=True)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def duck_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"duckdb:///{tmp_path / 'kallos.duckdb'}")
    store.init()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test on both backends."""
    return request.getfixturevalue("duck_store" if request.param == "duckdb" else "pg_store")


@pytest.fixture(
    params=[
        "duckdb",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-partitioned", marks=pytest.mark.postgres),
    ]
)
def any_layout_store(request: pytest.FixtureRequest) -> Store:
    """Both backends plus PostgreSQL's partitioned layout: for the store contract itself."""
    names = {"duckdb": "duck_store", "postgresql": "pg_store", "postgresql-partitioned": "pg_partitioned_store"}
    return request.getfixturevalue(names[request.param])


