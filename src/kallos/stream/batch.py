"""The micro-batch: updates gathered column by column, handed to the store and the bus as one frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.stream.protocol import PriceUpdate

TICK_COLUMNS = ("coin_id", "ts", "price", "price_change_24h_pct", "market_cap", "volume_24h", "received_at")


class TickBatch:
    """Appends are O(1) list appends (the receive loop stays cheap); the frame is built once per flush."""

    def __init__(self) -> None:
        self._coin: list[str] = []
        self._ts: list[int] = []
        self._price: list[float | None] = []
        self._pp: list[float | None] = []
        self._mcap: list[float | None] = []
        self._vol: list[float | None] = []
        self._received: list[int] = []

    def __len__(self) -> int:
        return len(self._ts)

    def add(self, update: PriceUpdate, received_us: int) -> None:
        self._coin.append(update.coin_id)
        self._ts.append(update.ts_us)
        self._price.append(update.price)
        self._pp.append(update.change_24h_pct)
        self._mcap.append(update.market_cap)
        self._vol.append(update.volume_24h)
        self._received.append(received_us)

    def extend(self, other: TickBatch) -> None:
        """Put `other`'s rows before ours (a batch that could not be written goes back to the front)."""
        self._coin[:0] = other._coin
        self._ts[:0] = other._ts
        self._price[:0] = other._price
        self._pp[:0] = other._pp
        self._mcap[:0] = other._mcap
        self._vol[:0] = other._vol
        self._received[:0] = other._received

    def ts_micros(self) -> np.ndarray:
        return np.asarray(self._ts, dtype=np.int64)

    def ticks(self) -> pd.DataFrame:
        """The `price_ticks` rows: CoinGecko ids, UTC timestamps."""
        return pd.DataFrame(
            {
                "coin_id": self._coin,
                "ts": pd.to_datetime(pd.Series(self._ts, dtype="int64"), unit="us", utc=True),
                "price": pd.Series(self._price, dtype="float64"),
                "price_change_24h_pct": pd.Series(self._pp, dtype="float64"),
                "market_cap": pd.Series(self._mcap, dtype="float64"),
                "volume_24h": pd.Series(self._vol, dtype="float64"),
                "received_at": pd.to_datetime(pd.Series(self._received, dtype="int64"), unit="us", utc=True),
            },
            columns=list(TICK_COLUMNS),
        )


def latest_of(ticks: pd.DataFrame) -> pd.DataFrame:
    """The newest row per coin of a batch: the `latest_prices` rows it makes current."""
    if ticks.empty:
        return ticks
    return ticks.sort_values(["coin_id", "ts"]).drop_duplicates("coin_id", keep="last").reset_index(drop=True)
