"""Pacing against the fake server's sliding-window limiter: one process (in virtual time), then two processes
sharing a key (real time, over loopback)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from kallos.fake import FakeClock, FakeCoinGecko, SimulatedMarket, client_for

KEY = "rate-test-key-31337"


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=3, n_coins=12, start="2023-01-01", end="2024-12-31")


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def _arrivals(srv: FakeCoinGecko) -> list[float]:
    return sorted(float(_field(r, "time")) for r in srv.requests)


def _statuses(srv: FakeCoinGecko) -> list[int]:
    return [int(_field(r, "status")) for r in srv.requests]


def _max_in_window(times: list[float], window: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_configured_rate_is_met_without_429(market: SimulatedMarket, tmp_path: Path) -> None:
    """R = 600/min against a server limiting at 600/min: no 429, rate measured over 30 s within 5 % of R.

    In virtual time (kallos.fake.transport): 8 concurrent callers for 32 s, no real waiting.
    """
    rate = 600
    clock = FakeClock()
    srv = FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, rate_limit_per_minute=rate, clock=clock)

    async def go() -> dict[str, Any]:
        async with client_for(
            srv, plan="pro", api_key=KEY, rate_limit_per_minute=rate, ratelimit_dir=tmp_path
        ) as cg:
            deadline = clock.time() + 32.0

            async def worker() -> None:
                while clock.time() < deadline:
                    await cg.ping()

            await asyncio.gather(*(worker() for _ in range(8)))
            return cg.stats.as_dict()

    stats = asyncio.run(go())
    arrivals = _arrivals(srv)
    statuses = _statuses(srv)
    assert stats["rate_limited"] == 0 and 429 not in statuses
    t0 = arrivals[0] + 1.0
    in_window = sum(1 for t in arrivals if t0 <= t < t0 + 30.0)
    measured = in_window * 2.0  # per minute
    assert measured == pytest.approx(rate, rel=0.05), (measured, stats)
    assert _max_in_window(arrivals, 60.0) <= rate
    assert stats["limiter_wait_seconds"] > 25  # the callers did wait for their slots (in virtual time)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from kallos.coingecko.client import CoinGeckoClient

    url, key, rate, state, start_at, calls = sys.argv[1:7]

    async def main():
        async with CoinGeckoClient(plan="pro", api_key=key, base_url=url, rate_limit_per_minute=float(rate),
                                   ratelimit_dir=Path(state)) as cg:
            await cg.ping()  # warm up: open the connection before the common start
            time.sleep(max(0.0, float(start_at) - time.time()))
            left = int(calls) - 1

            async def worker():
                nonlocal left
                while left > 0:
                    left -= 1
                    await cg.ping()

            await asyncio.gather(*(worker() for _ in range(4)))
            print(json.dumps(cg.stats.as_dict()))

    asyncio.run(main())
    """
)


def test_two_processes_sharing_a_key_stay_under_the_limit(market: SimulatedMarket, tmp_path: Path) -> None:
    """Each process is configured at R; together they must not exceed R (unshared they would send 2R)."""
    rate, calls = 600, 40
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, rate_limit_per_minute=rate) as srv:
        start_at = time.time() + 4.0
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    srv.url,
                    KEY,
                    str(rate),
                    str(tmp_path / "rl"),
                    str(start_at),
                    str(calls),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
        arrivals = _arrivals(srv)
        statuses = _statuses(srv)
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert [s["calls"] for s in stats] == [calls, calls]
    assert sum(s["rate_limited"] for s in stats) == 0 and 429 not in statuses
    assert len(arrivals) == 2 * calls
    # Together at most R/60 calls a second over every 3-second window, plus the sends a busy machine delays
    # after their slot by up to 0.5 s (the limiter's guard per minute) arriving together; unshared, the two
    # processes would send twice as many (about 60 here against a bound of 36).
    per_second = rate / 60
    assert _max_in_window(arrivals, 3.0) <= 3 * per_second + 1 + 0.5 * per_second
    span = arrivals[-1] - arrivals[0]
    assert (len(arrivals) - 1) / span * 60 <= rate * 1.05
