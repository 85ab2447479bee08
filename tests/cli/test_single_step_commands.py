"""Every write command runs through the pipeline runner: the lock (exit 5 when held) and the run ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kallos.cli.main import main
from kallos.fake.testing import fake_coingecko, small_market
from kallos.pipeline.lock import pipeline_lock
from kallos.store import open_store

WRITE_COMMANDS = {
    "coins sync": ["coins", "sync"],
    "coins details": ["coins", "details", "--coins", "bitcoin"],
    "market backfill": ["market", "backfill", "--coins", "bitcoin,ethereum", "--no-progress"],
    "market update": ["market", "update", "--no-progress"],
    "indicators compute": ["indicators", "compute", "--min-coverage", "0"],
    "signals generate": ["signals", "generate"],
    "index build": ["index", "build"],
}
STEP_OF = {
    "coins sync": "universe",
    "coins details": "details",
    "market backfill": "backfill",
    "market update": "market",
    "indicators compute": "indicators",
    "signals generate": "signals",
    "index build": "index",
}


def _ledger(url: str):
    store = open_store(url)
    try:
        runs = store.query("SELECT run_id, command, status, counts FROM pipeline_runs ORDER BY started_at, run_id")
        steps = store.query("SELECT run_id, step, status, counts FROM pipeline_steps")
        return runs, steps
    finally:
        store.close()


@pytest.mark.slow
def test_each_write_command_is_recorded_in_the_ledger(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "100000")
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    with fake_coingecko(dataset=small_market(n_coins=5), plan="pro", set_env=True):
        for command, argv in WRITE_COMMANDS.items():
            assert main(argv) == 0, (command, capsys.readouterr())
    runs, steps = _ledger(url)
    assert sorted(runs["command"]) == sorted(WRITE_COMMANDS)  # the pinned clock: all start at the same time
    assert set(runs["status"]) == {"success"}
    for run in runs.itertuples(index=False):
        (step,) = steps.loc[steps["run_id"] == run.run_id].itertuples(index=False)
        assert step.step == STEP_OF[run.command]
        counts = json.loads(step.counts)
        assert counts["status"] == step.status and isinstance(counts["failures"], dict)
        if run.command.startswith(("coins", "market")):
            assert counts["api_calls"] > 0, run.command  # the step's API usage is in its outcome
    backfill = json.loads(steps.set_index("step").loc["backfill", "counts"])
    assert backfill["rows_written"] > 0 and backfill["coins_ok"] == 2


@pytest.mark.parametrize("command", list(WRITE_COMMANDS))
def test_a_held_lock_refuses_every_write_command(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'locked.duckdb'}"
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    with pipeline_lock(url, run_id="the-cron-run"):
        assert main(WRITE_COMMANDS[command]) == 5
    assert "the-cron-run" in capsys.readouterr().err
    assert not (tmp_path / "locked.duckdb").exists()  # refused before the database was opened


def test_a_failed_single_step_keeps_its_exit_code_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    with fake_coingecko(dataset=small_market(n_coins=3), plan="pro", set_env=True):
        assert main(["market", "backfill", "--no-progress"]) == 4  # nothing tracked: an input error
    assert "no coins are tracked" in capsys.readouterr().err
    runs, steps = _ledger(url)
    assert runs[["command", "status"]].values.tolist() == [["market backfill", "failed"]]
    assert steps[["step", "status"]].values.tolist() == [["backfill", "failed"]]


def test_a_bug_in_a_single_step_is_recorded_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kallos.indicators.step

    def broken(*args: object, **kwargs: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'coin_id'")

    monkeypatch.setattr(kallos.indicators.step, "coverage_table", broken)
    url = f"duckdb:///{tmp_path / 'bug.duckdb'}"
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    assert main(["indicators", "compute"]) == 1
    assert "internal error: AttributeError" in capsys.readouterr().err
    runs, steps = _ledger(url)
    assert runs[["command", "status"]].values.tolist() == [["indicators compute", "failed"]]
    assert steps[["step", "status"]].values.tolist() == [["indicators", "failed"]]


def test_db_init_waits_for_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'migrate.duckdb'}"
    with pipeline_lock(url, run_id="the-cron-run"):
        assert main(["db", "init", "--database-url", url]) == 5
    assert "the-cron-run" in capsys.readouterr().err
    assert main(["db", "init", "--database-url", url]) == 0
