"""`kallos signals generate|evaluate` end to end on a DuckDB file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.signals.evaluation import REPORT_COLUMNS
from kallos.store import open_store
from kallos.store.schema import COMPOSITE_COLUMNS, INDICATOR_COLUMNS

from .signal_frames import realistic_frame


@pytest.fixture
def seeded_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    store_url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    f = realistic_frame(120, "alpha", 31)
    store = open_store(store_url)
    try:
        store.init()
        store.upsert("coins", pd.DataFrame({"coingecko_id": ["alpha"], "symbol": ["a"], "name": ["Alpha"]}))
        store.upsert("daily_market_data", f[["coin_id", "date", "close"]])
        ind = [c for c in f.columns if c in set(INDICATOR_COLUMNS) | set(COMPOSITE_COLUMNS)]
        store.upsert("daily_technical_indicators", f[["coin_id", "date", *ind]])
    finally:
        store.close()
    monkeypatch.setenv("KALLOS_DATABASE_URL", store_url)
    return store_url


def test_generate_then_evaluate_with_csv_and_parquet(seeded_url: str, tmp_path: Path, capsys) -> None:
    assert main(["signals", "generate"]) == 0
    assert "1 coin(s) computed (1 full" in capsys.readouterr().out
    assert main(["signals", "generate", "--coins", "alpha"]) == 0
    assert "1 up to date" in capsys.readouterr().out
    out_csv = tmp_path / "out" / "report.csv"
    assert main(["signals", "evaluate", "--horizons", "1,7", "--output", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "Signal evaluation" in printed and "composite" in printed
    csv = pd.read_csv(out_csv)
    assert list(csv.columns) == list(REPORT_COLUMNS) and set(csv["horizon"]) == {1, 7}
    out_pq = tmp_path / "report.parquet"
    assert main(["signals", "evaluate", "--output", str(out_pq)]) == 0
    assert set(pd.read_parquet(out_pq)["horizon"]) == {1, 7, 30}


def test_config_flag_and_errors(seeded_url: str, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "sig.json"
    cfg.write_text(json.dumps({"rules": {"rsi": {"oversold": "low"}}}))
    assert main(["signals", "generate", "--config", str(cfg)]) == 78  # configuration: docs/decisions.md#D59
    err = capsys.readouterr().err
    assert "rules.rsi.oversold" in err and '"low"' in err
    cfg.write_text(json.dumps({"rules": {"rsi": {"oversold": 35}}}))
    assert main(["signals", "generate", "--config", str(cfg)]) == 0
    assert main(["signals", "evaluate", "--horizons", "0"]) == 4
    assert main(["signals", "evaluate", "--output", str(tmp_path / "r.txt")]) == 4
    assert "csv or .parquet" in capsys.readouterr().err
