"""The in-memory market the fake server serves, and the one intraday path every view is cut from.

A dataset is a grid of UTC days (index 0 = ``start``) by coins, held as NumPy arrays. Each coin has daily
values at 00:00 UTC (price, market cap, 24 h volume), a life ``[first, last]`` in day indexes, a mask of the
days whose 00:00 point is published (missing days are part of the data). Between two daily values the price
follows a path through 25 hourly nodes per day::

    node(k, h) = lerp(P[k], P[k+1], h/24) * exp(sigma[k] * B[k, h])      B[k, 0] = B[k, 24] = 0

with B a Brownian bridge (simulated market) or zero (CSV datasets: plain interpolation, documented as
synthetic), and linear in between nodes. Because the path is piecewise linear through the nodes, the extremes
of any span are at nodes or at its ends, so 30-minute, 4-hour, daily and 4-day candles all agree with each
other and with the daily closes. Market caps follow the same path; volumes interpolate linearly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
NODES = 25  # hourly nodes per day, both midnights included

# Category ids and names as CoinGecko spells them (/coins/categories/list); the exclusion categories of
# docs/decisions.md#D8 first.
CATEGORY_NAMES: dict[str, str] = {
    "stablecoins": "Stablecoins",
    "usd-stablecoin": "USD Stablecoin",
    "wrapped-tokens": "Wrapped-Tokens",
    "liquid-staking-tokens": "Liquid Staking Tokens",
    "bridged-tokens": "Bridged Tokens",
    "exchange-based-tokens": "Exchange-based Tokens",
    "meme-token": "Meme",
    "layer-1": "Layer 1 (L1)",
    "smart-contract-platform": "Smart Contract Platform",
    "cryptocurrency": "Cryptocurrency",
    "decentralized-finance-defi": "Decentralized Finance (DeFi)",
    "proof-of-work-pow": "Proof of Work (PoW)",
    "gaming": "Gaming (GameFi)",
    "oracle": "Oracle",
    "privacy-coins": "Privacy Coins",
}


def category_name(category_id: str) -> str:
    return CATEGORY_NAMES.get(category_id, category_id.replace("-", " ").title())


@dataclass
class CoinInfo:
    """Static facts about one coin (what /coins/list and /coins/{id} say besides numbers)."""

    id: str
    symbol: str
    name: str
    categories: tuple[str, ...] = ()
    platforms: dict[str, str] = field(default_factory=dict)
    max_supply: float | None = None
    genesis_date: str | None = None
    hashing_algorithm: str | None = None
    block_time_in_minutes: int = 0
    image_id: int = 1


def day_of(value: dt.date | dt.datetime | str) -> int:
    """Epoch day number of a date (UTC)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    return (value - dt.date(1970, 1, 1)).days


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(ms))


def datetime_to_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta.days * DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000


def now_text(now: dt.datetime) -> str:
    """The server clock as sent in X-Fake-Now and /ping: ISO 8601, UTC, Z, milliseconds only when non-zero."""
    now = now.astimezone(dt.UTC)
    ms = now.microsecond // 1000
    base = now.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ms:03d}Z" if ms else f"{base}Z"


def iso_ms(ms: int) -> str:
    """CoinGecko's ISO format: milliseconds and a Z."""
    d = ms_to_datetime(ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


class Dataset:
    """Daily arrays per coin plus the intraday path model; read-only once built.

    Arrays are shaped (n_coins, n_days). ``price`` is filled on every day of a coin's life (missing days
    interpolated, so the path is defined); ``present`` says which 00:00 points are published. Values outside
    a coin's life are NaN. ``market_cap`` may hold NaN (served as null) and 0 inside the life.
    """

    def __init__(
        self,
        *,
        coins: list[CoinInfo],
        start_day: int,
        price: np.ndarray,
        market_cap: np.ndarray,
        volume: np.ndarray,
        present: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
        default_now: dt.datetime,
        sigma: np.ndarray | None = None,
        bridge: np.ndarray | None = None,
        ohlc: dict[str, np.ndarray] | None = None,
        ts_offset_ms: np.ndarray | None = None,
        description: str = "",
    ) -> None:
        self.coins = coins
        self.index = {c.id: i for i, c in enumerate(coins)}
        self.start_day = int(start_day)
        self.price = np.asarray(price, dtype=np.float64)
        self.market_cap = np.asarray(market_cap, dtype=np.float64)
        self.volume = np.asarray(volume, dtype=np.float64)
        self.present = np.asarray(present, dtype=bool)
        self.first = np.asarray(first, dtype=np.int64)
        self.last = np.asarray(last, dtype=np.int64)
        self.sigma = sigma
        self.bridge = bridge
        self.ts_offset_ms = ts_offset_ms
        self.description = description
        self.ohlc_coins: set[str] = set()  # coins whose daily candles come from real bars (CSV datasets)
        self.n_days = self.price.shape[1]
        if default_now.tzinfo is None:
            default_now = default_now.replace(tzinfo=dt.UTC)
        self.now = default_now.astimezone(dt.UTC)
        self.ohlc = ohlc if ohlc is not None else self._derive_daily_ohlc()

    # ----------------------------------------------------------------- time helpers
    def day_ms(self, k: int | np.ndarray) -> Any:
        return (np.asarray(k, dtype=np.int64) + self.start_day) * DAY_MS

    @property
    def last_ms(self) -> int:
        """The newest instant the path is defined at (the last grid day at 00:00)."""
        return int(self.day_ms(self.n_days - 1))

    def coin(self, coin_id: str) -> int | None:
        return self.index.get(coin_id)

    def first_ms(self, c: int) -> int:
        return int(self.day_ms(self.first[c]))

    def end_ms(self, c: int) -> int:
        return int(self.day_ms(self.last[c]))

    def is_listed(self, c: int, now_ms: int) -> bool:
        """The coin exists at `now` (its first point is published)."""
        return self.first_ms(c) <= now_ms

    def is_inactive(self, c: int, now_ms: int) -> bool:
        """docs/decisions.md#D10: a series ending more than 30 days before now is delisted."""
        return self.end_ms(c) < now_ms - 30 * DAY_MS

    # ----------------------------------------------------------------- the path
    def _bridge_at(self, c: int, k: np.ndarray, h: np.ndarray) -> np.ndarray:
        if self.bridge is None or self.sigma is None:
            return np.ones(k.shape)
        kk = np.clip(k, 0, self.bridge.shape[1] - 1)
        return np.exp(self.sigma[c, kk].astype(np.float64) * self.bridge[c, kk, h].astype(np.float64))

    def nodes(self, c: int, k: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(price, market cap, volume) at node h (0..24) of day k."""
        k = np.asarray(k, dtype=np.int64)
        h = np.asarray(h, dtype=np.int64)
        k1 = np.minimum(k + 1, self.n_days - 1)
        w = h / 24.0
        factor = self._bridge_at(c, k, h)
        p0, p1 = self.price[c, k], self.price[c, k1]
        m0, m1 = self.market_cap[c, k], self.market_cap[c, k1]
        v0, v1 = self.volume[c, k], self.volume[c, k1]
        at_start = h == 0
        at_end = h == 24
        p = np.where(at_start, p0, np.where(at_end, p1, ((1 - w) * p0 + w * p1) * factor))
        m = np.where(at_start, m0, np.where(at_end, m1, ((1 - w) * m0 + w * m1) * factor))
        v = np.where(at_start, v0, np.where(at_end, v1, (1 - w) * v0 + w * v1))
        return p, m, v

    def values_at(self, c: int, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Path values at arbitrary instants (NaN outside the coin's life)."""
        t = np.asarray(t_ms, dtype=np.int64)
        k = t // DAY_MS - self.start_day
        r = t - (k + self.start_day) * DAY_MS
        hpos = r / HOUR_MS
        h = np.minimum(np.floor(hpos).astype(np.int64), 23)
        w = hpos - h
        inside = ((k >= self.first[c]) & (k < self.last[c])) | ((k == self.last[c]) & (r == 0))
        kc = np.clip(k, 0, self.n_days - 1)
        pa, ma, va = self.nodes(c, kc, h)
        pb, mb, vb = self.nodes(c, kc, h + 1)
        exact = r == 0
        p = np.where(exact, self.price[c, kc], pa + w * (pb - pa))
        m = np.where(exact, self.market_cap[c, kc], ma + w * (mb - ma))
        v = np.where(exact, self.volume[c, kc], va + w * (vb - va))
        nan = np.full(t.shape, np.nan)
        return np.where(inside, p, nan), np.where(inside, m, nan), np.where(inside, v, nan)

    def _derive_daily_ohlc(self) -> dict[str, np.ndarray]:
        """Daily candles from the path: the candle of day k closes at k 00:00 and opens at k-1 00:00."""
        n_c, n_d = self.price.shape
        o = np.full((n_c, n_d), np.nan)
        hi = np.full((n_c, n_d), np.nan)
        lo = np.full((n_c, n_d), np.nan)
        cl = np.full((n_c, n_d), np.nan)
        hours = np.arange(NODES)
        for c in range(n_c):
            f, last = int(self.first[c]), int(self.last[c])
            if last <= f:
                continue
            days = np.arange(f, last)  # candle of day k+1 spans day k
            kk = np.repeat(days, NODES)
            hh = np.tile(hours, days.size)
            p, _, _ = self.nodes(c, kk, hh)
            p = p.reshape(days.size, NODES)
            o[c, days + 1] = self.price[c, days]
            cl[c, days + 1] = self.price[c, days + 1]
            hi[c, days + 1] = p.max(axis=1)
            lo[c, days + 1] = p.min(axis=1)
        return {"open": o, "high": hi, "low": lo, "close": cl}

    # ----------------------------------------------------------------- convenience for tests and the demo
    def to_frame(self, coin_ids: list[str] | None = None, now: dt.datetime | None = None) -> Any:
        """The published daily truth as a frame: coin_id, date, open, high, low, close, market_cap, volume."""
        import pandas as pd

        now_ms = datetime_to_ms(now or self.now)
        frames = []
        for coin in self.coins:
            if coin_ids is not None and coin.id not in coin_ids:
                continue
            c = self.index[coin.id]
            k = np.arange(self.first[c], self.last[c] + 1)
            k = k[self.present[c, k] & (self.day_ms(k) <= now_ms)]
            frames.append(
                pd.DataFrame(
                    {
                        "coin_id": coin.id,
                        "date": pd.to_datetime((k + self.start_day).astype("int64"), unit="D"),
                        "open": self.ohlc["open"][c, k],
                        "high": self.ohlc["high"][c, k],
                        "low": self.ohlc["low"][c, k],
                        "close": self.price[c, k],
                        "market_cap": self.market_cap[c, k],
                        "volume": self.volume[c, k],
                    }
                )
            )
        if not frames:
            return pd.DataFrame(
                columns=["coin_id", "date", "open", "high", "low", "close", "market_cap", "volume"]
            )
        return pd.concat(frames, ignore_index=True)

    def coin_ids(self) -> list[str]:
        return [c.id for c in self.coins]


def default_now_for(last_data_day: int) -> dt.datetime:
    """docs/decisions.md#D3: the dataset's last date plus 15 hours."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=int(last_data_day), hours=15)
