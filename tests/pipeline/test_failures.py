"""Issue 13: what a hostile or careless user does to a real store, and the clear answer Kallos gives.

Each test reproduces one reported failure against the fake CoinGecko on loopback and a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.store import open_store

from .conftest import KEY

pytestmark = pytest.mark.slow  # the backfilled store fixture: seconds


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _path(url: str) -> Path:
    return Path(url.removeprefix("duckdb:///"))


def test_export_never_overwrites_the_store_or_a_file_without_force(backfilled, tmp_path, capsys):
    db = _path(backfilled)
    before = _digest(db)
    for target in (db, Path(f"{db}.wal")):
        for extra in ([], ["--force"]):
            assert main(["export", "coins", "-f", "csv", "-o", str(target), *extra]) == 4
            assert "it is the Kallos database itself" in capsys.readouterr().err
    assert _digest(db) == before

    out = tmp_path / "coins.csv"
    out.write_text("precious\n")
    assert main(["export", "coins", "-f", "csv", "-o", str(out)]) == 4
    assert "already exists; pass --force" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(["export", "coins", "-f", "csv", "-o", str(out), "--force"]) == 0
    assert len(pd.read_csv(out)) > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".coins.csv")] == []  # no temp file left


def test_unwritable_outputs_are_named(backfilled, tmp_path, capsys):
    """Root ignores permissions, so "unwritable" is a path below a regular file, or a directory."""
    blocker = tmp_path / "regular-file"
    blocker.write_text("x")
    for target in (blocker / "out.csv", tmp_path):
        assert main(["export", "coins", "-f", "csv", "-o", str(target)]) == 4
        err = capsys.readouterr().err
        assert str(target) in err and "Traceback" not in err
    bars = tmp_path / "bars.csv"
    days = pd.date_range("2024-01-01", periods=40).strftime("%Y-%m-%d")
    close = pd.Series(range(1, 41), dtype=float)
    pd.DataFrame(
        {"date": days, "open": close, "high": close + 1, "low": close - 0.5, "close": close, "volume": 1e6}
    ).to_csv(bars, index=False)
    assert main(["indicators", "file", str(bars), "-o", str(blocker / "ind.csv")]) == 4
    assert f"cannot write {blocker / 'ind.csv'}" in capsys.readouterr().err


def test_export_to_a_closed_pipe_is_not_a_crash(backfilled):
    """`kallos export -o - | head -1` exited 1 with no message; the reader had what it asked for."""
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kallos.cli.main", "export", "daily_market_data", "-f", "csv", "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"coin_id,")
    proc.stdout.close()  # what `head -1` does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_index_build_end_before_any_qualifying_month_end(backfilled, capsys):
    assert main(["index", "build", "--end", "2021-03-15"]) == 4
    err = capsys.readouterr().err
    assert "no month end qualifies on or before --end 2021-03-15" in err and "base date" in err


def test_signals_evaluate_start_after_end_is_a_usage_error(backfilled, capsys):
    assert main(["signals", "evaluate", "--start", "2024-06-01", "--end", "2024-01-01"]) == 2
    assert "after --end" in capsys.readouterr().err


def test_status_durations_do_not_come_from_a_pinned_clock(backfilled, capsys):
    """Under KALLOS_NOW every run started and finished at the same instant: status showed 0.0 s."""
    assert main(["status", "--json"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    store = open_store(backfilled)
    try:
        counts = json.loads(store.scalar("SELECT counts FROM pipeline_runs WHERE command = 'backfill'"))
    finally:
        store.close()
    assert counts["duration_seconds"] > 0.05
    assert f"{counts['duration_seconds']:.1f}" in out


def test_key_with_a_trailing_newline_works_and_never_shows(backfilled, monkeypatch, capsys):
    """`COINGECKO_API_KEY=$'KEY\\n'`: the HTTP library refused the header and quoted the key in its error."""
    monkeypatch.setenv("COINGECKO_API_KEY", KEY + "\n")
    assert main(["run"]) == 0
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    store = open_store(backfilled)
    try:
        stored = store.query("SELECT error, counts FROM pipeline_runs").astype(str).to_string()
        stored += store.query("SELECT error, counts FROM pipeline_steps").astype(str).to_string()
    finally:
        store.close()
    assert KEY not in stored


def test_a_clock_in_1970_does_not_age_the_coins(backfilled, monkeypatch):
    store = open_store(backfilled)
    try:
        before = store.query("SELECT coingecko_id, last_seen FROM coins").set_index("coingecko_id")["last_seen"]
    finally:
        store.close()
    monkeypatch.setenv("KALLOS_NOW", "1970-01-02T12:00:00Z")
    main(["market", "update"])
    store = open_store(backfilled)
    try:
        after = store.query("SELECT coingecko_id, last_seen FROM coins").set_index("coingecko_id")["last_seen"]
    finally:
        store.close()
    both = before.dropna().index
    assert (after[both] >= before[both]).all()
    assert after.min() > pd.Timestamp(dt.date(2000, 1, 1), tz="UTC")
