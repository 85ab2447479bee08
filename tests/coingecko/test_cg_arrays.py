"""Chart and candle answers read as NumPy columns (docs/decisions.md#D115): the same frames as the per-point models
on real answers of the fake server, the same acceptance of odd but readable answers, and malformed ones refused
with the series, the point and the input named."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kallos.coingecko.arrays import CandleArrays, parse_candles, parse_chart
from kallos.coingecko.errors import ResponseShapeError
from kallos.coingecko.models import MarketChart, parse_ohlc
from kallos.fake import FakeClock, FakeCoinGecko, Faults, SimulatedMarket, client_for
from kallos.ingest import frames

KEY = "test-key"
H = {"x-cg-pro-api-key": KEY}
END = dt.datetime(2024, 12, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=11, n_coins=4, start="2022-01-01", end="2024-12-31")


@pytest.fixture(scope="module")
def answers(market: SimulatedMarket) -> dict[str, Any]:
    """Real answers of the fake server (in-process), decoded."""
    fake = FakeCoinGecko(dataset=market, plan="pro", api_key=KEY)
    end = int(END.timestamp())
    asks = {
        "range_daily": ("market_chart/range", {"from": end - 400 * 86400, "to": end}),
        "range_hourly": ("market_chart/range", {"from": end - 20 * 86400, "to": end}),
        "chart_5m": ("market_chart", {"days": "1"}),
        "ohlc_range_daily": ("ohlc/range", {"from": end - 180 * 86400, "to": end, "interval": "daily"}),
        "ohlc_range_hourly": ("ohlc/range", {"from": end - 20 * 86400, "to": end, "interval": "hourly"}),
        "ohlc_4h": ("ohlc", {"days": "30"}),
    }
    out = {}
    for name, (path, params) in asks.items():
        answer = fake.answer(
            f"/api/v3/coins/bitcoin/{path}", {"vs_currency": "usd", **{k: str(v) for k, v in params.items()}}, H
        )
        assert answer.status == 200, answer.payload[:200]
        out[name] = json.loads(answer.payload)
    return out


@pytest.mark.parametrize("name", ["range_daily", "range_hourly", "chart_5m"])
def test_chart_arrays_give_the_models_frame(answers: dict[str, Any], name: str) -> None:
    data = answers[name]
    arrays = parse_chart(data)
    assert len(arrays) == len(data["prices"]) > 20
    pd.testing.assert_frame_equal(frames.chart_frame(arrays), frames.chart_frame(MarketChart.model_validate(data)))


@pytest.mark.parametrize("name", ["ohlc_range_daily", "ohlc_range_hourly", "ohlc_4h"])
def test_candle_arrays_give_the_models_frame(answers: dict[str, Any], name: str) -> None:
    data = answers[name]
    arrays = parse_candles(data)
    assert len(arrays) == len(data) > 20
    pd.testing.assert_frame_equal(frames.candles_frame(arrays), frames.candles_frame(parse_ohlc(data)))
    half = len(data) // 2
    both = CandleArrays.concat([parse_candles(data[:half]), parse_candles(data[half:])])
    pd.testing.assert_frame_equal(frames.candles_frame(both), frames.candles_frame(arrays))


ODD_BUT_READABLE: list[dict[str, Any]] = [
    # series on different, unsorted and repeated timestamps (the last value of a timestamp wins), nulls, no volumes
    {
        "prices": [[3000, 1], [1000, 2], [1000, 5], [2000, None]],
        "market_caps": [[1000, 7], [4000, 8.5]],
        "total_volumes": None,
    },
    # numeric strings and booleans read as float() reads them; items past the value ignored; mixed lengths
    {"prices": [[3000, 1, 9], [1000, "2.5"], [2000, True]], "market_caps": [[1000, 7]]},
    {"prices": [], "market_caps": [], "total_volumes": []},
    {"prices": [[1_700_000_000_000.4, 1.0]], "extra_field": {"kept": "ignored"}},
]


@pytest.mark.parametrize("data", ODD_BUT_READABLE)
def test_odd_but_readable_charts_read_as_the_models_read_them(data: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(
        frames.chart_frame(parse_chart(data)), frames.chart_frame(MarketChart.model_validate(data))
    )


def test_odd_but_readable_candles_read_as_the_models_read_them() -> None:
    data = [[2000, 1, 2, 0.5, None], [1000, "1", 2, 0.5, 1.5, 99], [1000, 1, 2, 0.5, 1.5]]
    pd.testing.assert_frame_equal(frames.candles_frame(parse_candles(data)), frames.candles_frame(parse_ohlc(data)))


MALFORMED_CHARTS = [
    ({"prices": [[1000, 1.0], [2000, None], [None, 3.0]]}, "prices[2]: the timestamp is null"),
    ({"prices": [[1000, 1.0], [2000, "n/a"]]}, "prices[1]: the value 'n/a' is not a number"),
    ({"market_caps": [[1000, 1.0], [2000]]}, "market_caps[1]: expected [timestamp_ms, value], got [2000]"),
    ({"prices": [[1000, 1.0]], "total_volumes": [[1000, 2.0], 7]}, "total_volumes[1]: expected [timestamp_ms, value]"),
    ({"prices": [[1000, [1.0]]]}, "prices[0]: the value [1.0] is not a number"),
    ({"prices": {"1000": 1.0}}, "prices: expected a list of points, got dict"),
    ({"prices": "1000,1.0"}, "prices: expected a list of points, got str"),
    ([[1000, 1.0]], "expected a JSON object with prices, market_caps, total_volumes, got list"),
    ({"prices": [[1e20, 1.0]]}, "prices[0]: the timestamp is 1e+20 ms (outside years 1-9999)"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED_CHARTS)
def test_malformed_charts_are_refused_naming_the_point(data: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as refused:
        parse_chart(data)
    assert message in str(refused.value)


MALFORMED_CANDLES = [
    ([[1000, 1, 2, 0.5, 1.5], [2000, 1, 2, 0.5]], "candles[1]: expected [timestamp_ms, open, high, low, close]"),
    ([[1000, 1, 2, 0.5, 1.5], [None, 1, 2, 0.5, 1.5]], "candles[1]: the timestamp is null"),
    ([[1000, 1, "high", 0.5, 1.5]], "candles[0]: the value 'high' is not a number"),
    ([None], "candles[0]: expected [timestamp_ms, open, high, low, close], got None"),
    ({"prices": []}, "expected a JSON array of [timestamp_ms, open, high, low, close] rows, got dict"),
    (None, "got null"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED_CANDLES)
def test_malformed_candles_are_refused_naming_the_point(data: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as refused:
        parse_candles(data)
    assert message in str(refused.value)


# --- through the client: a malformed 200 answer is a shape error naming the coin and the endpoint ---------------

CHART = "/coins/{id}/market_chart/range"
OHLC = "/coins/{id}/ohlc/range"


@pytest.mark.parametrize(
    ("call", "endpoint", "fault", "bad", "message"),
    [
        ("chart", CHART, "malformed_point", None, "]: expected [timestamp_ms, value], got None"),
        ("chart", CHART, "malformed_point", [1, "x"], "]: the value 'x' is not a number"),
        ("chart", CHART, "malformed_point", [1], "]: expected [timestamp_ms, value], got [1]"),
        ("chart", CHART, "malformed_series", None, "prices: expected a list of points, got dict"),
        ("candles", OHLC, "malformed_point", [1, 2, 3], "]: expected [timestamp_ms, open, high, low, close]"),
        ("candles", OHLC, "malformed_series", None, "a JSON array of [timestamp_ms, open, high, low, close]"),
    ],
)
def test_the_client_names_coin_and_endpoint_of_a_malformed_answer(
    market: SimulatedMarket, tmp_path: Path, call: str, endpoint: str, fault: str, bad: Any, message: str
) -> None:
    faults = Faults(script=[fault], malformed_point=bad, malformed_series=bad or {})
    fake = FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, clock=FakeClock(), faults=faults)

    async def go() -> tuple[BaseException, dict[str, Any]]:
        async with client_for(fake, plan="pro", api_key=KEY, ratelimit_dir=tmp_path, rate_limit_per_minute=1e6) as cg:
            with pytest.raises(ResponseShapeError) as refused:
                if call == "chart":
                    await cg.market_chart_range_arrays("bitcoin", END - dt.timedelta(days=400), END)
                else:
                    await cg.ohlc_range_arrays("bitcoin", END - dt.timedelta(days=180), END)
            return refused.value, cg.stats.as_dict()

    error, stats = asyncio.run(go())
    assert error.endpoint == endpoint and error.coin_id == "bitcoin"  # type: ignore[attr-defined]
    assert message in str(error) and "coin_id=bitcoin" in str(error) and endpoint in str(error)
    assert stats["calls"] == 1 and stats["retries"] == 0 and stats["failures"] == 1  # the same again: not retried
