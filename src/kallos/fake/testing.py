"""Helpers for tests (ours and users'): a started fake server with the shared clock pinned.

```python
from kallos.fake.testing import fake_coingecko

def test_my_pipeline(monkeypatch):
    with fake_coingecko(plan="demo", api_key="k") as srv:
        monkeypatch.setenv("KALLOS_COINGECKO_BASE_URL", srv.url)
        ...
```
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from kallos.fake.dataset import Dataset
from kallos.fake.faults import Faults
from kallos.fake.server import FakeCoinGecko


@lru_cache(maxsize=4)
def small_market(
    seed: int = 7, n_coins: int = 30, start: str = "2021-01-01", end: str = "2024-12-31"
) -> Dataset:
    """A cached, smaller simulated market: fast to build, enough for most tests."""
    from kallos.fake.simulated import SimulatedMarket

    return SimulatedMarket(seed=seed, n_coins=n_coins, start=start, end=end)


@contextmanager
def fake_coingecko(
    dataset: Dataset | None = None,
    plan: str = "pro",
    api_key: str | None = None,
    rate_limit_per_minute: int | None = None,
    faults: Faults | None = None,
    now: dt.datetime | None = None,
    set_env: bool = False,
    **kwargs: Any,
) -> Iterator[FakeCoinGecko]:
    """Start a fake server on a free loopback port; stop it afterwards.

    ``set_env=True`` also exports KALLOS_COINGECKO_BASE_URL, KALLOS_COINGECKO_PLAN, KALLOS_NOW (the server's
    clock, docs/decisions.md#D36) and COINGECKO_API_KEY for the duration, restoring them after.
    """
    srv = FakeCoinGecko(
        dataset=dataset if dataset is not None else small_market(),
        plan=plan,
        api_key=api_key,
        rate_limit_per_minute=rate_limit_per_minute,
        faults=faults,
        now=now,
        **kwargs,
    )
    saved: dict[str, str | None] = {}
    with srv:
        if set_env:
            env = {
                "KALLOS_COINGECKO_BASE_URL": srv.url,
                "KALLOS_COINGECKO_PLAN": plan,
                "KALLOS_NOW": srv.now_header,
            }
            if api_key or plan != "public":
                env["COINGECKO_API_KEY"] = api_key or "fake-key"
            for name, value in env.items():
                saved[name] = os.environ.get(name)
                os.environ[name] = value
        try:
            yield srv
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old
