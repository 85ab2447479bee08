"""`kallos features export` and `kallos export`: readable by DuckDB, polars and pandas; reruns are byte-identical."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.features import load_features
from kallos.store import Store, open_store

from .feature_frames import bars
from .test_load_features import seed


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'kallos.duckdb'}"
    store = open_store(url)
    store.init()
    seed(store, bars())
    store.close()
    return url


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_export_is_hive_partitioned_readable_everywhere_and_byte_identical_on_rerun(db: str, tmp_path: Path) -> None:
    out = tmp_path / "features"
    args = ["features", "export", "--out", str(out), "--database-url", db, "--horizons", "1,7"]
    assert main(args) == 0
    first = digests(out)
    assert {"year=2021/part-0.parquet", "_data_dictionary.csv"} <= set(first)
    assert main(args) != 0  # no silent overwrite
    assert main([*args, "--force"]) == 0
    assert digests(out) == first

    store = open_store(db)
    expected = load_features(store=store, horizons=(1, 7))
    store.close()
    back = pd.read_parquet(out).drop(columns=["year"]).sort_values(["coin_id", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        back[["close", "rsi_14", "target_return_7"]], expected[["close", "rsi_14", "target_return_7"]]
    )
    n = duckdb.sql(
        f"SELECT count(*), min(year) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()[0]
    assert n == (len(expected), 2021)
    pl = pytest.importorskip("polars")
    lazy = pl.scan_parquet(str(out / "**/*.parquet"), hive_partitioning=True)
    assert lazy.select(pl.len()).collect().item() == len(expected)
    dictionary = pd.read_csv(out / "_data_dictionary.csv")
    assert list(dictionary.columns) == ["column", "meaning", "unit", "lookback_bars"]
    assert set(dictionary["column"]) == set(expected.columns)


def test_csv_export_with_filters_and_pandas_ta_names(db: str, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    code = main(
        ["features", "export", "--out", str(out), "--format", "csv", "--coins", "beta", "--since", "2021-03-01",
         "--until", "2021-03-31", "--naming", "pandas-ta", "--database-url", db]
    )  # fmt: skip
    assert code == 0
    frame = pd.read_csv(out / "year=2021" / "part-0.csv")
    assert len(frame) == 31 and set(frame["coin_id"]) == {"beta"} and "RSI_14" in frame.columns


def test_dictionary_look_back_matches_the_engine() -> None:
    from kallos.features import build_features
    from kallos.features.dictionary import describe
    from kallos.indicators.contract import OUTPUT_COLUMNS

    f = build_features(bars(400, ("alpha",)).iloc[20:])  # no holes in this stretch
    for col in OUTPUT_COLUMNS:
        first = int(f[col].notna().to_numpy().argmax())
        assert first == describe(col)[2], col


def test_kallos_export_filters_views_and_warns_on_zero_rows(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.csv"
    args = ["export", "daily_market_data", "-f", "csv", "-o", str(out), "--database-url", db]
    assert main([*args, "--coins", "alpha,beta", "--until", "2021-01-31", "--columns", "date,close"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["coin_id", "date", "close"]
    assert set(frame["coin_id"]) == {"alpha", "beta"} and frame["date"].max() == "2021-01-31"
    view = tmp_path / "v.parquet"
    assert main(["export", "v_daily_market_data", "-o", str(view), "--coins", "gamma", "--database-url", db]) == 0
    assert set(pd.read_parquet(view)["coingecko_id"]) == {"gamma"}
    capsys.readouterr()
    assert main([*args, "--since", "2030-01-01", "--force"]) == 0  # replacing m.csv needs --force (D51)
    assert "0 rows" in capsys.readouterr().err


def test_an_export_of_nothing_writes_the_dictionary_and_warns(store: Store, tmp_path: Path) -> None:
    from kallos.features.export import write_features

    result = write_features(
        load_features(store=store), tmp_path / "none", fmt="parquet", horizons=(1, 7, 30), naming="kallos"
    )
    assert result["rows"] == 0 and (tmp_path / "none" / "_data_dictionary.csv").exists()
