"""The client's telemetry counters (docs/decisions.md#D90): answers by status, bytes, rate-limit waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kallos.fake import FakeCoinGecko, Faults, SimulatedMarket

from .test_cg_client import KEY, client, run


def test_requests_by_status_bytes_and_rate_limit_waits_are_counted(tmp_path: Path) -> None:
    market = SimulatedMarket(seed=3, n_coins=5, start="2024-01-01", end="2024-03-31")
    faults = Faults(script=["429_no_retry_after", "500", "disconnect"])
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, faults=faults) as srv:

        async def go() -> Any:
            async with client(srv.url, tmp_path, no_retry_after_wait_seconds=0.2) as cg:
                await cg.market_chart("bitcoin", 7)
                return cg.stats

        stats = run(go())
    assert dict(stats.by_status) == {"429": 1, "500": 1, "error": 1, "200": 1}
    assert stats.calls == 4 and stats.retries == 3 and stats.rate_limited == 1
    # The 429's wait counts as waiting on the rate limit; the 500's and the disconnect's backoffs do not.
    assert 0.2 <= stats.rate_limit_wait_seconds < 0.2 + stats.limiter_wait_seconds + 0.01
    assert stats.retry_wait_seconds > stats.rate_limit_wait_seconds - stats.limiter_wait_seconds
    assert stats.bytes_received > 500  # a week of prices, plus the error bodies
    d = stats.as_dict()
    assert d["by_status"] == {"429": 1, "500": 1, "error": 1, "200": 1} and d["bytes_received"] == stats.bytes_received
