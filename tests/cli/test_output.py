"""Output for people and pipes: tables fit 80 columns, `--json` is real JSON (docs/decisions.md#D41)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from kallos.cli import common
from kallos.cli.main import main
from kallos.cli.signals import render_report
from kallos.pipeline.contract import StepOutcome
from kallos.pipeline.ledger import Ledger
from kallos.store import open_store

LONG_ERROR = (
    "market: 3 coin(s) failed: bitcoin: CoinGecko answered /coins/bitcoin/market_chart/range with HTTP 500 "
    "after 0 retries (endpoint=/coins/{id}/market_chart/range, status=500); ethereum: the same; solana: the same"
)


@pytest.fixture
def ledger_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"duckdb:///{tmp_path / 'status.duckdb'}"
    monkeypatch.setenv("KALLOS_DATABASE_URL", url)
    store = open_store(url)
    try:
        store.init()
        for command in ("run", "indicators compute"):
            ledger = Ledger(store, command)
            ledger.start_run()
            started = ledger.start_step("market")
            outcome = StepOutcome(status="partial", coins_ok=9, rows_written=1234, failures={"bitcoin": "HTTP 500"})
            ledger.finish_step("market", started, "partial", {**outcome.as_dict(), "duration_seconds": 1.5}, LONG_ERROR)
            ledger.finish_run(
                "partial", {"rows_written": 1234, "duration_seconds": 12.5, "steps": {"market": "partial"}}, LONG_ERROR
            )
    finally:
        store.close()
    return url


def test_status_fits_80_columns(ledger_db: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(common.console, "width", 80)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    runs = open_store(ledger_db)
    try:
        run_ids = runs.query("SELECT run_id FROM pipeline_runs")["run_id"].tolist()
    finally:
        runs.close()
    for run_id in run_ids:
        assert any(line.split() and line.split()[0] == run_id for line in lines)  # ids unbroken, first column
    assert "indicators compute" in out.replace("\n", " ") or "indicators" in out
    assert "1,234" in out and "HTTP 500" in out
    assert "12.5" in out  # the measured duration, not the (possibly pinned) ledger clock


def test_status_json_decodes_the_ledger_counts(ledger_db: str, capsys) -> None:
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(isinstance(run["counts"], dict) for run in data["runs"])
    assert data["runs"][0]["counts"]["rows_written"] == 1234
    (step,) = data["last_run_steps"]
    assert step["counts"]["failures"] == {"bitcoin": "HTTP 500"} and step["counts"]["coins_ok"] == 9


def test_signal_evaluation_fits_80_columns() -> None:
    rows = [
        {
            "signal": signal, "direction": -1, "horizon": h, "count": 123456, "hit_rate": 0.5523,
            "mean_return": -1.12345, "median_return": 1.2345, "base_mean_return": 0.0123, "base_hit_rate": 0.51,
            "excess_mean_return": -1.3,
        }
        for signal in ("rsi_oversold", "stoch_cross_down", "volume_confirmed", "composite")
        for h in (1, 7, 30)
    ]  # fmt: skip
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the console
    console.print(render_report(pd.DataFrame(rows)))
    text = console.export_text()
    console.file.close()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "stoch_cross_down" in text and "-130.00%" in text and "+123.45%" in text  # nothing cut


def test_json_helpers_emit_plain_json(capsys) -> None:
    import datetime as dt

    import numpy as np

    common.print_json_lines([{"day": dt.date(2024, 1, 2), "n": np.int64(3), "gap": float("nan")}])
    common.print_json({"when": pd.Timestamp("2024-01-02T03:04:05Z"), "ids": ("a", "b")})
    line, *rest = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {"day": "2024-01-02", "n": 3, "gap": None}
    assert json.loads("\n".join(rest)) == {"when": "2024-01-02T03:04:05+00:00", "ids": ["a", "b"]}
