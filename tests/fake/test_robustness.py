"""Every coin answers every endpoint without crashing or warning, whatever its life (late, delisted, gaps)."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import pytest

from kallos.fake.api import Api
from kallos.fake.responses import ApiError
from kallos.fake.simulated import SimulatedMarket

REQUESTS = [
    ("", {}),
    ("/market_chart", {"vs_currency": "usd", "days": "1"}),
    ("/market_chart", {"vs_currency": "usd", "days": "30"}),
    ("/market_chart", {"vs_currency": "eur", "days": "max"}),
    ("/market_chart", {"vs_currency": "usd", "days": "200", "interval": "daily"}),
    ("/market_chart/range", {"vs_currency": "usd", "from": "2019-01-01", "to": "2019-02-01"}),
    ("/market_chart/range", {"vs_currency": "usd", "from": "2018-06-01", "to": "2022-06-01"}),
    ("/ohlc", {"vs_currency": "usd", "days": "1"}),
    ("/ohlc", {"vs_currency": "usd", "days": "30"}),
    ("/ohlc", {"vs_currency": "usd", "days": "max"}),
    ("/ohlc", {"vs_currency": "usd", "days": "90", "interval": "daily"}),
    ("/ohlc/range", {"vs_currency": "usd", "from": "2019-03-01", "to": "2019-08-01", "interval": "daily"}),
    ("/history", {"date": "01-06-2019"}),
]


@pytest.fixture(scope="module")
def api() -> Api:
    market = SimulatedMarket(seed=11, n_coins=30, start="2018-01-01", end="2023-12-31")
    return Api(market, "pro")


@pytest.mark.parametrize("now", [None, dt.datetime(2019, 6, 1, 12, 30, tzinfo=dt.UTC)])
def test_every_coin_every_endpoint(api: Api, now: dt.datetime | None) -> None:
    now = now or api.ds.now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for coin in api.ds.coin_ids():
            for suffix, params in REQUESTS:
                try:
                    body = api.handle(f"/coins/{coin}{suffix}", dict(params), now)
                except ApiError as err:
                    assert err.status == 404 and err.body == {"error": "coin not found"}  # not listed yet
                    break
                text = body if isinstance(body, str) else json.dumps(body, allow_nan=False)
                json.loads(text)
        for path in ("/coins/list", "/coins/markets", "/coins/categories", "/global"):
            api.handle(path, {"vs_currency": "usd", "per_page": "250"}, now)
