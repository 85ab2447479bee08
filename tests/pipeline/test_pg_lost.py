"""Issue 13 #4: PostgreSQL lost in the middle of a backfill is a clear failure (exit 4), not a traceback, and a
rerun once it is back completes the data (real PostgreSQL behind a loopback forwarder the test cuts)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest

from kallos.cli.main import main
from kallos.fake import Faults
from kallos.store import open_store
from tests.tcp_proxy import TCPProxy

from .conftest import BACKFILL_NOW, N_COINS, pipeline_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_postgres_lost_during_a_backfill(pg_url, pg_schema, fake_server, monkeypatch, capsys):
    target = urlsplit(pg_url)
    proxy = TCPProxy((target.hostname or "127.0.0.1", target.port or 5432))
    url = f"postgresql://{target.username}@127.0.0.1:{proxy.port}{target.path}?schema={pg_schema}"
    fake_server.now = BACKFILL_NOW
    # Later answers are slowed so the backfill is surely still running when the database goes away.
    fake_server.faults = Faults(script=[None] * 6 + ["slow"] * 200, slow_seconds=0.2)
    pipeline_env(monkeypatch, url, fake_server.url, BACKFILL_NOW)

    def cut_when_busy() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum("market_chart" in r.path for r in fake_server.requests) >= 3:
                proxy.cut()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=cut_when_busy, daemon=True)
    watcher.start()
    try:
        t0 = time.monotonic()
        code = main(["market", "backfill", "--top", str(N_COINS), "--include-inactive", "--no-progress"])
        elapsed = time.monotonic() - t0
    finally:
        watcher.join(5)
        proxy.close()
    err = capsys.readouterr().err
    assert proxy.cut_event.is_set()
    assert code == 4, err
    assert "PostgreSQL" in err and "Traceback" not in err
    assert elapsed < 60

    # the database is back: the same command completes what was not stored
    fake_server.faults = None
    monkeypatch.setenv("KALLOS_DATABASE_URL", f"{pg_url}?schema={pg_schema}")
    assert main(["market", "backfill", "--top", str(N_COINS), "--include-inactive", "--no-progress"]) == 0
    store = open_store(pg_url, schema=pg_schema)
    try:
        assert store.scalar("SELECT count(DISTINCT coin_id) FROM daily_market_data") == N_COINS
    finally:
        store.close()
