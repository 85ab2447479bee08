"""Where a micro-batch goes: `price_ticks` and `latest_prices` in one transaction, `market_snapshots` on a cadence.

On PostgreSQL the sink keeps one store open. A DuckDB file admits one process at a time (docs/decisions.md#D13),
so on DuckDB the sink opens the file for each flush and closes it at once: the daily run can open the file between
flushes (it waits briefly for a flush to end), and while the run holds the file the stream keeps its updates in
memory and writes them after the run (docs/decisions.md#D104).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from kallos.store import Store, open_store
from kallos.stream.batch import latest_of


class StoreSink:
    def __init__(self, url: str, *, snapshot_seconds: float = 300.0, store: Store | None = None) -> None:
        self.url = url
        self.embedded = url.startswith("duckdb:")
        self.snapshot_seconds = snapshot_seconds
        self._own = store is None
        self._store = store if store is not None else (None if self.embedded else open_store(url))
        self._last_snapshot: dict[str, int] = {}

    @contextmanager
    def session(self) -> Iterator[Store]:
        if self._store is not None:
            yield self._store
            return
        store = open_store(self.url)
        try:
            yield store
        finally:
            store.close()

    def close(self) -> None:
        if self._own and self._store is not None:
            self._store.close()
            self._store = None

    def last_seen(self) -> dict[str, int]:
        """The newest stored update time per coin (microseconds), so a restarted stream skips what is stored."""
        with self.session() as store:
            frame = store.query(
                "SELECT c.coingecko_id AS coin_id, l.ts FROM latest_prices l JOIN coins c ON c.coin_id = l.coin_id"
            )
        if frame.empty:
            return {}
        return dict(zip(frame["coin_id"], _micros(frame["ts"]), strict=True))

    def write(self, ticks: pd.DataFrame) -> int:
        """Store one batch; returns the rows of `price_ticks` written. Raises StoreBusyError when the DuckDB file is
        held by another process (the caller keeps the batch and tries again)."""
        if ticks.empty:
            return 0
        latest = latest_of(ticks)
        snapshots = self._due_snapshots(latest)
        with self.session() as store, store.transaction():
            written = store.upsert("price_ticks", ticks)
            store.upsert("latest_prices", latest)
            if not snapshots.empty:
                store.upsert("market_snapshots", snapshots)
        for coin, ts in zip(snapshots["coin_id"], snapshots["fetched_at"], strict=True):
            self._last_snapshot[coin] = int(pd.Timestamp(ts).value // 1000)
        return written

    def _due_snapshots(self, latest: pd.DataFrame) -> pd.DataFrame:
        """The provisional intraday snapshot (docs/decisions.md#D2) from the stream, at most one per coin per
        `snapshot_seconds`."""
        if self.snapshot_seconds <= 0 or latest.empty:
            return pd.DataFrame(columns=["coin_id", "fetched_at", "price", "market_cap", "volume", "source"])
        ts_us = _micros(latest["ts"])
        due = [
            (ts - self._last_snapshot.get(coin, -(10**18))) >= self.snapshot_seconds * 1e6
            for coin, ts in zip(latest["coin_id"], ts_us, strict=True)
        ]
        rows = latest[due]
        return pd.DataFrame(
            {
                "coin_id": rows["coin_id"],
                "fetched_at": rows["ts"],
                "price": rows["price"],
                "market_cap": rows["market_cap"],
                "volume": rows["volume_24h"],
                "source": "stream",
            }
        ).reset_index(drop=True)


def _micros(ts: pd.Series) -> list[int]:
    """UTC timestamps -> integer microseconds since the epoch, whatever the frame's datetime unit."""
    delta = pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")
    return [int(x) for x in (delta // pd.Timedelta(microseconds=1))]
