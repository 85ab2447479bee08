"""`kallos indicators file` and `kallos indicators compute` through the CLI entry point (exit codes)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.indicators import OUTPUT_COLUMNS, compute_indicators
from kallos.store import open_store

from .test_formulas import random_bars


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    bars = pd.concat([random_bars(120, 1).assign(coin_id="a"), random_bars(90, 2).assign(coin_id="b")])
    src = tmp_path / f"bars{suffix}"
    bars.to_csv(src, index=False) if suffix == ".csv" else bars.to_parquet(src, index=False)
    out = tmp_path / f"out{suffix}"
    assert main(["indicators", "file", str(src), "-o", str(out)]) == 0
    got = pd.read_csv(out, parse_dates=["date"]) if suffix == ".csv" else pd.read_parquet(out)
    expected = compute_indicators(bars)
    assert list(got.columns) == ["coin_id", "date", "ohlc_source", *OUTPUT_COLUMNS]
    assert len(got) == len(expected)
    pd.testing.assert_series_equal(got["rsi_14"], expected["rsi_14"], check_exact=False, rtol=1e-12)


def test_file_errors_exit_4_and_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bars.csv"
    random_bars(30).drop(columns=["volume"]).to_csv(src, index=False)
    assert main(["indicators", "file", str(src), "-o", str(tmp_path / "out.csv")]) == 4
    assert "volume" in capsys.readouterr().err
    assert main(["indicators", "file", str(src), "-o", str(tmp_path / "out.xlsx")]) == 4
    assert main(["indicators", "file", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o.csv")]) == 4


def test_compute_command(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    store = open_store(url)
    store.init()
    store.upsert("coins", pd.DataFrame({"coingecko_id": ["a"], "symbol": ["a"], "name": ["A"]}))
    store.upsert("daily_market_data", random_bars(100).assign(coin_id="a"))
    store.close()
    assert main(["indicators", "compute", "--database-url", url, "--workers", "1"]) == 0
    store = open_store(url)
    try:
        assert len(store.read("daily_technical_indicators")) == 100
    finally:
        store.close()
