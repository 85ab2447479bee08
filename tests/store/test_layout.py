"""Issue 13 #9: KALLOS_PG_PARTITION_BY_YEAR is honoured by whichever command creates the schema, and a store
laid out differently from the setting says so and how to migrate (real PostgreSQL, one schema per test)."""

from __future__ import annotations

import pytest

from kallos.cli.main import main
from kallos.store import open_store
from kallos.store.migrations import is_partitioned

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("first", [["indicators", "compute"], ["index", "build"], ["signals", "evaluate"]])
def test_any_first_command_creates_the_partitioned_layout(pg_url, pg_schema, monkeypatch, first) -> None:
    monkeypatch.setenv("KALLOS_DATABASE_URL", f"{pg_url}?schema={pg_schema}")
    monkeypatch.setenv("KALLOS_PG_PARTITION_BY_YEAR", "true")
    main(first)  # nothing stored yet: the command itself may have nothing to do
    store = open_store(pg_url, schema=pg_schema)
    try:
        assert store.status()["version"] and is_partitioned(store)
    finally:
        store.close()


def test_a_store_of_the_other_layout_is_refused_with_the_way_to_migrate(pg_url, pg_schema, monkeypatch, capsys):
    url = f"{pg_url}?schema={pg_schema}"
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    assert main(["db", "init"]) == 0  # plain: the setting is not set
    monkeypatch.setenv("KALLOS_PG_PARTITION_BY_YEAR", "true")
    for command in (["db", "init"], ["indicators", "compute"]):
        assert main(command) == 78
        err = capsys.readouterr().err
        assert "plain (not partitioned)" in err and "KALLOS_PG_PARTITION_BY_YEAR=true" in err
        assert "kallos db init --partition-by-year" in err and "INSERT INTO" in err
    monkeypatch.delenv("KALLOS_PG_PARTITION_BY_YEAR")
    assert main(["indicators", "compute"]) == 0  # unset: the existing layout is kept
    assert main(["db", "init", "--no-partition-by-year"]) == 0


def test_duckdb_with_the_setting_is_a_configuration_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KALLOS_PG_PARTITION_BY_YEAR", "true")
    assert main(["indicators", "compute", "--database-url", f"duckdb:///{tmp_path / 'k.duckdb'}"]) == 78
    assert "PostgreSQL option" in capsys.readouterr().err
