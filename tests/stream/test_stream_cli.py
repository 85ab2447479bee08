"""`kallos stream` as a user runs it: a clean stop on SIGTERM flushes what it holds; bad input is a clear error;
the DuckDB file stays usable by other commands while the stream runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kallos.cli.main import main
from kallos.fake.dataset import Dataset
from kallos.fake.stream import FakeStream

from .conftest import KEY, add_coins, opened, stored_keys


def _env(url: str, ws_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KALLOS_") and k != "COINGECKO_API_KEY"}
    env.update(
        KALLOS_DATABASE_URL=url,
        KALLOS_COINGECKO_PLAN="pro",
        COINGECKO_API_KEY=KEY,
        KALLOS_COINGECKO_WS_URL=ws_url,
        KALLOS_STREAM_FLUSH_SECONDS="5",  # long: the final flush on SIGTERM must store what is held
        KALLOS_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def _kallos(*args: str) -> list[str]:
    return [sys.executable, "-m", "kallos.cli.main", *args]


@pytest.mark.slow
def test_sigterm_flushes_what_it_holds_and_other_commands_can_read(
    tmp_path: Path, market: Dataset, coins: list[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with opened(url) as store:
        store.init()
        add_coins(store, coins)
    with FakeStream(market, rate=100) as srv:
        proc = subprocess.Popen(
            _kallos("stream", "--coins", ",".join(coins[:5]), "--json"),
            env=_env(url, srv.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while srv.updates_sent < 100 and time.monotonic() < deadline:
                time.sleep(0.1)
            # While the stream runs, another process can open the file (the stream only holds it while flushing).
            status = subprocess.run(
                _kallos("status"), env=_env(url, srv.url), capture_output=True, text=True, timeout=60
            )
            assert status.returncode == 0, status.stderr
            srv.pause()
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        sent = srv.sent()
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["stored"] == len(sent) > 0
    assert KEY not in out and KEY not in err  # the key is in a header, never in a URL or a log line
    with opened(url) as store:
        assert stored_keys(store) == sent
        runs = store.query("SELECT command, status FROM pipeline_runs")
    assert ("stream", "success") in set(zip(runs["command"], runs["status"], strict=True))


def test_demo_plan_is_refused_before_any_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in _env(f"duckdb:///{tmp_path / 'k.duckdb'}", "ws://127.0.0.1:9/v1").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KALLOS_COINGECKO_PLAN", "demo")
    assert main(["stream", "--coins", "bitcoin"]) == 78
    err = capsys.readouterr().err
    assert "paid plan" in err and "Traceback" not in err


def test_unknown_coins_and_bad_durations_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    for name, value in _env(url, "ws://127.0.0.1:9/v1").items():
        monkeypatch.setenv(name, value)
    assert main(["stream", "--coins", "bitcoin", "--for", "soon"]) == 2
    assert "--for" in capsys.readouterr().err
    with opened(url) as store:
        store.init()
        add_coins(store, ["bitcoin"])
    assert main(["stream", "--coins", "bitcoin,not-a-coin", "--for", "1s"]) == 2
    err = capsys.readouterr().err
    assert "not-a-coin" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1d", 86400.0)]
)
def test_durations(text: str, seconds: float) -> None:
    from kallos.cli.stream import parse_duration

    assert parse_duration(text) == seconds
