"""Fixtures of the fake-server tests: one small simulated market and a started pro server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kallos.fake import FakeCoinGecko
from kallos.fake.dataset import Dataset
from kallos.fake.testing import small_market


@pytest.fixture(scope="session")
def market() -> Dataset:
    return small_market()


@pytest.fixture(scope="module")
def pro_server(market: Dataset) -> Iterator[FakeCoinGecko]:
    with FakeCoinGecko(dataset=market, plan="pro") as srv:
        yield srv


@pytest.fixture
def pro(pro_server: FakeCoinGecko) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=pro_server.url, headers={"x-cg-pro-api-key": "test-key"}, timeout=10
    ) as client:
        yield client
