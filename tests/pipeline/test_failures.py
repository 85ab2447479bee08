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


def _watermarks(url: str) -> pd.DataFrame:
    store = open_store(url)
    try:
        return store.query(
            "SELECT coin_id, series, first_date, last_date, missing_dates, state FROM ingestion_watermarks "
            "ORDER BY coin_id, series"
        )
    finally:
        store.close()


def test_a_clock_ahead_of_the_api_is_refused_and_moves_nothing(backfilled, monkeypatch, capsys):
    """Issue 13 #1: a run whose clock was a year ahead moved every watermark past data never stored."""
    from .conftest import RUN_NOW

    before = _watermarks(backfilled)
    monkeypatch.setenv("KALLOS_NOW", (RUN_NOW + dt.timedelta(days=365)).isoformat())
    assert main(["run"]) == 78
    err = capsys.readouterr().err
    assert "ahead" in err and "KALLOS_NOW" in err and "X-Fake-Now" in err
    pd.testing.assert_frame_equal(_watermarks(backfilled), before)
    monkeypatch.setenv("KALLOS_NOW", RUN_NOW.isoformat())  # the clock fixed: the next run does the work
    assert main(["run"]) == 0
    store = open_store(backfilled)
    try:
        last = pd.Timestamp(store.scalar("SELECT max(date) FROM daily_market_data")).date()
    finally:
        store.close()
    assert last == RUN_NOW.date()


def test_a_watermark_past_the_stored_data_is_seen_and_repaired(backfilled, monkeypatch, capsys):
    """A store damaged before the fix (watermarks a year ahead): `market gaps` finds the lag from the data, and
    the daily run at the right clock fetches the days behind it."""
    from .conftest import RUN_NOW

    store = open_store(backfilled)
    try:
        stored_last = pd.Timestamp(store.scalar("SELECT max(date) FROM daily_market_data")).date()
        store.execute("UPDATE ingestion_watermarks SET last_date = '2025-12-01' WHERE series = 'market_chart'")
    finally:
        store.close()
    capsys.readouterr()
    assert main(["market", "gaps", "--json", "--only-gaps"]) == 0
    out = capsys.readouterr().out
    assert f'"behind_days": {(RUN_NOW.date() - stored_last).days}' in out
    assert main(["run"]) == 0
    assert main(["market", "gaps", "--json", "--only-gaps"]) == 0
    assert '"coin_id"' not in capsys.readouterr().out  # nothing behind, no holes
    store = open_store(backfilled)
    try:
        per_coin = store.query(
            "SELECT c.coingecko_id, max(d.date) AS last FROM daily_market_data d JOIN coins c USING (coin_id) "
            "WHERE c.status = 'active' GROUP BY c.coingecko_id"
        )
    finally:
        store.close()
    assert (pd.to_datetime(per_coin["last"]).dt.date == RUN_NOW.date()).all()


def test_the_daily_run_backfills_new_entrants_within_its_budget(backfilled, monkeypatch):
    """Issue 13 #6: `kallos run` updated only coins already stored; a coin entering the top N needed a manual
    backfill. Three coins without history enter the universe; a budget of ~one coin's calls takes one a run."""
    store = open_store(backfilled)
    try:
        newcomers = list(
            store.query("SELECT coingecko_id FROM coins WHERE status = 'active' ORDER BY coingecko_id LIMIT 3")[
                "coingecko_id"
            ]
        )
        for table in ("daily_market_data", "ingestion_watermarks"):
            store.execute(
                f"DELETE FROM {table} WHERE coin_id IN (SELECT coin_id FROM coins WHERE coingecko_id IN "
                "(:a, :b, :c))",
                dict(zip("abc", newcomers, strict=True)),
            )
    finally:
        store.close()
    monkeypatch.setenv("KALLOS_UNIVERSE_TOP", "12")
    monkeypatch.setenv("KALLOS_ENTRANT_CALLS_PER_RUN", "15")  # one coin: 1 chart + ~10 candle calls

    def with_history() -> set[str]:
        s = open_store(backfilled)
        try:
            have = set(s.read("daily_market_data", coins=newcomers, columns=["date"])["coin_id"])
        finally:
            s.close()
        return have

    assert main(["run"]) == 0
    store = open_store(backfilled)
    try:
        market = json.loads(
            store.scalar(
                "SELECT counts FROM pipeline_steps WHERE step = 'market' ORDER BY started_at DESC LIMIT 1"
            )
        )
    finally:
        store.close()
    extra = market["extra"]
    assert extra["entrants"] == 3 and extra["entrants_backfilled"] == 1 and extra["entrants_pending"] == 2
    assert len(with_history()) == 1
    assert main(["market", "update", "--no-progress"]) == 0  # the next run takes the next one
    assert len(with_history()) == 2
    assert main(["market", "update", "--no-progress"]) == 0
    assert with_history() == set(newcomers)
