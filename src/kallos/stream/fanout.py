"""Optional fan-out of stored updates to NATS (subject per coin) and Redis pub/sub (channel per coin).

Updates are published after their batch is committed, so a consumer never sees a price the store does not hold.
Subjects: `kallos.prices.<coin>`; Redis channels: `kallos:prices:<coin>`; the payload is one JSON object with the
`price_ticks` columns (times as ISO 8601 UTC).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import pandas as pd

NATS_PREFIX = "kallos.prices."
REDIS_PREFIX = "kallos:prices:"


def subject_token(coin_id: str) -> str:
    """A coin id as one NATS subject token (no dots, spaces or wildcards)."""
    return "".join("_" if ch in ". *>\t" else ch for ch in coin_id)


def payloads(ticks: pd.DataFrame) -> list[tuple[str, bytes]]:
    out = []
    ts = ticks["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    received = ticks["received_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cols = [ticks[c].tolist() for c in ("price", "price_change_24h_pct", "market_cap", "volume_24h")]
    for i, coin in enumerate(ticks["coin_id"].tolist()):
        body = {
            "coin_id": coin,
            "ts": ts.iat[i],
            "price": _num(cols[0][i]),
            "price_change_24h_pct": _num(cols[1][i]),
            "market_cap": _num(cols[2][i]),
            "volume_24h": _num(cols[3][i]),
            "received_at": received.iat[i],
        }
        out.append((coin, json.dumps(body, separators=(",", ":")).encode()))
    return out


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


class Publisher(Protocol):
    async def publish(self, ticks: pd.DataFrame) -> int: ...

    async def close(self) -> None: ...


class NatsPublisher:
    def __init__(self, client: Any) -> None:
        self._nc = client

    @classmethod
    async def connect(cls, url: str) -> NatsPublisher:
        import nats

        return cls(await nats.connect(url, connect_timeout=5, max_reconnect_attempts=10, allow_reconnect=True))

    async def publish(self, ticks: pd.DataFrame) -> int:
        items = payloads(ticks)
        for coin, body in items:
            await self._nc.publish(NATS_PREFIX + subject_token(coin), body)
        await self._nc.flush()
        return len(items)

    async def close(self) -> None:
        await self._nc.drain()


class RedisPublisher:
    def __init__(self, client: Any) -> None:
        self._r = client

    @classmethod
    async def connect(cls, url: str) -> RedisPublisher:
        import redis.asyncio as redis

        client = redis.from_url(url, socket_connect_timeout=5)
        await client.ping()
        return cls(client)

    async def publish(self, ticks: pd.DataFrame) -> int:
        items = payloads(ticks)
        async with self._r.pipeline(transaction=False) as pipe:
            for coin, body in items:
                pipe.publish(REDIS_PREFIX + coin, body)
            await pipe.execute()
        return len(items)

    async def close(self) -> None:
        await self._r.aclose()
