"""The fake's answers parse with the response models of CoinGecko's official Python SDK (coingecko-sdk).

The SDK's pydantic models are generated from CoinGecko's own OpenAPI spec, so a field they require and the fake
lacks (as `has_supply_breakdown` was) is a fidelity bug a typed client would trip over.
"""

from __future__ import annotations

import httpx
import pytest

from kallos.fake import FakeCoinGecko
from kallos.fake.dataset import DAY_MS, HOUR_MS, datetime_to_ms

sdk = pytest.importorskip("coingecko_sdk", reason="coingecko-sdk (test extra) not installed")

from coingecko_sdk.types.coin_get_id_response import CoinGetIDResponse  # noqa: E402
from coingecko_sdk.types.coins.market_chart_get_range_response import MarketChartGetRangeResponse  # noqa: E402
from coingecko_sdk.types.coins.ohlc_get_range_response import OhlcGetRangeResponse  # noqa: E402
from pydantic import TypeAdapter  # noqa: E402


@pytest.mark.parametrize("params", [{}, {"localization": "false", "tickers": "false"}])
def test_coin_detail_parses_with_the_sdk_model(pro: httpx.Client, params: dict[str, str]) -> None:
    body = pro.get("/coins/bitcoin", params=params).json()
    parsed = CoinGetIDResponse.model_validate(body)
    required = {name for name, f in CoinGetIDResponse.model_fields.items() if f.is_required()}
    assert "has_supply_breakdown" in required and required <= set(body)
    assert parsed.has_supply_breakdown is True  # bitcoin's supply is capped
    token = pro.get("/coins/tether").json()
    assert CoinGetIDResponse.model_validate(token).has_supply_breakdown is False


def test_hourly_range_and_hourly_candles_parse_with_the_sdk_models(
    pro: httpx.Client, pro_server: FakeCoinGecko
) -> None:
    now = datetime_to_ms(pro_server.now) // 1000
    frm = now - 30 * 86_400
    chart = pro.get(
        "/coins/bitcoin/market_chart/range", params={"vs_currency": "usd", "from": frm, "to": now - 86_400}
    ).json()
    MarketChartGetRangeResponse.model_validate(chart)
    candles = pro.get(
        "/coins/bitcoin/ohlc/range",
        params={"vs_currency": "usd", "from": frm, "to": frm + 31 * 86_400 - 3600, "interval": "hourly"},
    ).json()
    TypeAdapter(OhlcGetRangeResponse).validate_python(candles)
    assert len(candles) >= 700 and all(b[0] - a[0] == HOUR_MS for a, b in zip(candles, candles[1:], strict=False))


def test_a_days_hourly_closes_bracket_its_daily_close(pro: httpx.Client, pro_server: FakeCoinGecko) -> None:
    """The daily point stamped D 00:00 closes day D-1: it lies within that day's hourly closes."""
    now = datetime_to_ms(pro_server.now) // 1000
    start = (now - 60 * 86_400) // 86_400 * 86_400
    hourly = pro.get(
        "/coins/ethereum/market_chart/range",
        params={"vs_currency": "usd", "from": start, "to": start + 40 * 86_400},
    ).json()["prices"]
    daily = pro.get(
        "/coins/ethereum/market_chart/range",
        params={"vs_currency": "usd", "from": start - 100 * 86_400, "to": start + 40 * 86_400},
    ).json()["prices"]
    by_day: dict[int, list[float]] = {}
    for ts, price in hourly:
        by_day.setdefault(int(ts) // DAY_MS, []).append(price)
    checked = 0
    for ts, close in daily:
        day = int(ts) // DAY_MS - 1  # the day this midnight point closes
        hours = by_day.get(day, []) + [p for t, p in hourly if int(t) // HOUR_MS * HOUR_MS == (day + 1) * DAY_MS]
        if len(hours) < 24:
            continue
        assert min(hours) <= close <= max(hours)
        checked += 1
    assert checked >= 30
