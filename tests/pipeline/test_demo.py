"""`kallos demo` end to end in a temporary directory, its HTML report (also in headless Chromium), exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

from kallos import clock
from kallos.cli.main import main
from kallos.store import open_store

from .conftest import pipeline_env

pytestmark = pytest.mark.slow  # whole pipelines against the fake server: seconds each

IN_CI = os.environ.get("CI", "").lower() == "true"
# A smaller market than the real demo's (the full demo is timed by hand: docs/operations.md#timing).
DEMO_ARGS = ["--coins", "10", "--start", "2021-01-01", "--end", "2024-12-31"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        # nothing of the developer's environment, and no network: the demo must not need either
        pipeline_env(mp, "duckdb:///unused.duckdb", "http://192.0.2.1:9/unreachable", clock.utcnow())
        for name in (
            "KALLOS_DATABASE_URL",
            "KALLOS_COINGECKO_BASE_URL",
            "KALLOS_COINGECKO_PLAN",
            "COINGECKO_API_KEY",
            "KALLOS_RATE_LIMIT_PER_MINUTE",
            "KALLOS_NOW",
        ):
            mp.delenv(name, raising=False)
        mp.chdir(out)
        code = main(["demo", "-o", str(out / "site"), *DEMO_ARGS])
    clock.set_now(None)
    return {"code": code, "dir": out / "site", "url": f"duckdb:///{out / 'site' / 'demo.duckdb'}"}


def test_demo_runs_the_whole_pipeline_offline(demo_run):
    assert demo_run["code"] == 0
    store = open_store(demo_run["url"])
    try:
        runs = store.query("SELECT command, status FROM pipeline_runs")
        assert runs.values.tolist() == [["demo", "success"]]
        steps = store.query("SELECT step, status FROM pipeline_steps").set_index("step")["status"].to_dict()
        assert steps == {
            s: "success" for s in ("universe", "details", "backfill", "indicators", "signals", "index")
        }
        n_coins = store.scalar("SELECT count(DISTINCT coin_id) FROM daily_market_data")
        assert n_coins >= 9  # every simulated coin with history (a delisted one included)
        last = pd.Timestamp(store.scalar("SELECT max(date) FROM daily_market_data")).date()
        assert (
            str(last) == "2024-12-31"
        )  # the server's now is the dataset's last day + 15 h: that day is final
        assert store.scalar("SELECT count(*) FROM daily_technical_indicators") > 0
        assert store.scalar("SELECT count(*) FROM trading_signals WHERE signal = 'composite'") > 0
        assert store.scalar("SELECT count(*) FROM index_monthly_constituents") > 0
        assert (
            str(pd.Timestamp(store.scalar("SELECT max(date) FROM daily_index_values")).date()) == "2024-12-31"
        )
    finally:
        store.close()


def test_demo_report_is_self_contained_with_all_sections(demo_run):
    html = (demo_run["dir"] / "kallos_report.html").read_text(encoding="utf-8")
    for section in ("summary", "index", "constituents", "signals", "data-quality"):
        assert f'<section id="{section}">' in html
    assert re.search(r'<figure id="index-chart"><img [^>]*src="data:image/png;base64,', html)
    assert 'id="weights-chart"' in html
    assert "Index metrics" in html and "max drawdown" in html
    assert "Latest signals" in html and "Data quality" in html
    # nothing loaded from elsewhere: no scripts, no external URLs in src/href
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_status_and_export_on_the_demo_database(demo_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KALLOS_DATABASE_URL", demo_run["url"])
    assert main(["status"]) == 0
    assert "demo" in capsys.readouterr().out

    target = tmp_path / "prices.parquet"
    assert (
        main(
            ["export", "daily_market_data", "--format", "parquet", "--since", "2024-12-01", "-o", str(target)]
        )
        == 0
    )
    frame = pd.read_parquet(target)
    assert frame["date"].min() == pd.Timestamp("2024-12-01") and frame["date"].max() == pd.Timestamp(
        "2024-12-31"
    )
    assert "bitcoin" in set(frame["coin_id"])  # CoinGecko ids, not surrogate integers

    csv = tmp_path / "signals.csv"
    assert (
        main(["export", "trading_signals", "--format", "csv", "--since", "2024-12-31", "-o", str(csv)]) == 0
    )
    signals = pd.read_csv(csv)
    assert set(signals["date"]) == {"2024-12-31"} and "composite" in set(signals["signal"])

    assert main(["export", "coins", "--format", "csv", "-o", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("coingecko_id,")
    assert main(["export", "coins", "--since", "2024-01-01"]) == 2  # no date column: a usage error
    assert main(["export", "no_such_table"]) == 2


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    browser = _chromium()
    if browser is None:
        message = "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message + " -- required when CI=true")
        pytest.skip(message)
    report = (demo_run["dir"] / "kallos_report.html").resolve()
    common = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
    ]  # fmt: skip
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=90
    )
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = subprocess.run(
        [*common, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True, timeout=90
    )
    assert 'id="index-chart"' in dom.stdout and "data:image/png;base64," in dom.stdout


def test_demo_with_too_little_history_skips_the_index_and_still_succeeds(tmp_path, monkeypatch, capsys):
    # docs/decisions.md#D20: no month end has 3 years of history: the index step is skipped (warning), exit 0
    out = tmp_path / "short"
    assert main(["demo", "-o", str(out), "--coins", "5", "--start", "2024-06-01", "--end", "2024-12-31"]) == 0
    assert "the index was not built" in capsys.readouterr().err
    store = open_store(f"duckdb:///{out / 'demo.duckdb'}")
    try:
        steps = store.query("SELECT step, status, counts FROM pipeline_steps").set_index("step")
        assert steps.loc["index", "status"] == "skipped" and steps.loc["backfill", "status"] == "success"
        assert store.scalar("SELECT status FROM pipeline_runs") == "success"
    finally:
        store.close()
    html = (out / "kallos_report.html").read_text(encoding="utf-8")
    assert "The index is not built yet" in html and 'id="index-chart"' not in html
    assert '<section id="signals">' in html and '<section id="data-quality">' in html
