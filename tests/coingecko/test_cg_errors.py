"""Every documented CoinGecko error shape maps to the right typed error, retry decision and advice."""

from __future__ import annotations

import pytest

from kallos.coingecko.errors import error_for_response, is_retryable, parse_error_body, parse_retry_after
from kallos.errors import (
    AuthError,
    BadRequestError,
    NotFoundError,
    PlanLimitError,
    RateLimitedError,
    TransientAPIError,
)

# Bodies quoted in docs/decisions.md (C-API.3) (real responses reported in public issues).
SHAPE1_429 = (
    '{"status":{"error_code":429,"error_message":"You\'ve exceeded the Rate Limit. Please visit '
    'https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}'
)
SHAPE1_10005 = '{"status":{"error_code":10005,"error_message":"This request is limited Pro API subscribers"}}'
SHAPE2_10012 = (
    '{"error":{"status":{"timestamp":"2024-03-30T07:22:29.427+00:00","error_code":10012,'
    '"error_message":"Your request exceeds the allowed time range. Public API users are limited to querying '
    "historical data within the past 365 days. Upgrade to a paid plan to enjoy full historical data access: "
    'https://www.coingecko.com/en/api/pricing. "}}}'
)
SHAPE3_404 = '{"error":"coin not found"}'
SHAPE3_400 = '{"error":"invalid vs_currency"}'
SHAPE4_10011 = (
    '{"timestamp":"2025-09-01T13:07:05.880+00:00","error_code":10011,"status":{"error_message":'
    '"If you are using Demo API key, please change your root URL from pro-api.coingecko.com to '
    'api.coingecko.com"}}'
)
SHAPE4_10010 = (
    '{"timestamp":"2025-09-01T13:07:05.880+00:00","error_code":10010,"status":{"error_message":'
    '"If you are using Pro API key, please change your root URL from api.coingecko.com to '
    'pro-api.coingecko.com"}}'
)
SHAPE1_10002 = (
    '{"status":{"error_code":10002,"error_message":"API Key Missing. Pro API requires x_cg_pro_api_key, '
    'Demo API requires x_cg_demo_api_key"}}'
)
SHAPE1_20000 = (
    '{"status":{"error_code":20000,"error_message":"Blocked: malicious activity detected from your ASN"}}'
)
CLOUDFLARE_1020 = """<!DOCTYPE html>
<html class="no-js" lang="en-US"><head>
<title>Access denied | api.coingecko.com used Cloudflare to restrict access</title>
</head><body><div id="cf-error-details"><h1><span class="cf-error-type">Error</span>
<span class="cf-error-code">1020</span></h1><h2>Access denied</h2>
<p>The site owner may have set restrictions that prevent you from accessing the site.</p>
<span>Cloudflare Ray ID: <strong>64fd6e33ccd70ac6</strong></span></div></body></html>"""
CLOUDFLARE_502 = """<html><head><title>api.coingecko.com | 502: Bad gateway</title></head>
<body><span class="cf-error-code">502</span> Bad gateway. Cloudflare</body></html>"""


def test_parse_all_json_shapes() -> None:
    assert parse_error_body(SHAPE1_429).error_code == 429
    assert parse_error_body(SHAPE2_10012).error_code == 10012
    assert "365 days" in (parse_error_body(SHAPE2_10012).message or "")
    assert parse_error_body(SHAPE3_404).message == "coin not found"
    four = parse_error_body(SHAPE4_10011)
    assert four.error_code == 10011 and "Demo API key" in (four.message or "")
    cf = parse_error_body(CLOUDFLARE_1020, "text/html; charset=UTF-8")
    assert cf.html and cf.cloudflare and cf.cloudflare_code == 1020
    assert cf.message and "Access denied" in cf.message
    # Not JSON at all, or JSON of another type: never raises.
    assert parse_error_body(b"\xff\xfe garbage").error_code is None
    assert parse_error_body("[1,2]").message is None


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "advice"),
    [
        (429, SHAPE1_429, RateLimitedError, 429, "KALLOS_RATE_LIMIT_PER_MINUTE"),
        (401, SHAPE1_10005, PlanLimitError, 10005, "paid CoinGecko plans"),
        (401, SHAPE2_10012, PlanLimitError, 10012, "shrink the date range"),
        (400, SHAPE4_10011, AuthError, 10011, "set KALLOS_COINGECKO_PLAN=demo"),
        (400, SHAPE4_10010, AuthError, 10010, "set KALLOS_COINGECKO_PLAN=pro"),
        (401, SHAPE1_10002, AuthError, 10002, "set COINGECKO_API_KEY"),
        (403, SHAPE1_20000, AuthError, 20000, "another network"),
        (403, CLOUDFLARE_1020, AuthError, 1020, "Cloudflare"),
        (400, SHAPE3_400, BadRequestError, None, "invalid vs_currency"),
        (401, '{"error":"Invalid API key"}', AuthError, None, "check COINGECKO_API_KEY"),
        (503, "<html><title>Service Unavailable</title></html>", TransientAPIError, None, "HTTP 503"),
        (502, CLOUDFLARE_502, TransientAPIError, None, "Cloudflare"),
        (408, "", TransientAPIError, None, "HTTP 408"),
    ],
)
def test_error_mapping(status: int, body: str, cls: type, code: int | None, advice: str) -> None:
    err = error_for_response(status, body, endpoint="/coins/markets", plan="demo")
    assert type(err) is cls
    assert err.error_code == code
    assert err.status == status and err.endpoint == "/coins/markets"
    assert advice in str(err)
    assert is_retryable(err) == issubclass(cls, TransientAPIError)


def test_unknown_coin_is_not_found_for_that_coin() -> None:
    err = error_for_response(404, SHAPE3_404, endpoint="/coins/{id}", coin_id="no-such-coin")
    assert isinstance(err, NotFoundError) and err.coin_id == "no-such-coin"
    assert "no-such-coin" in str(err) and not is_retryable(err)


def test_recorded_real_error_bodies(cassettes) -> None:  # type: ignore[no-untyped-def]
    """The 2021 recordings: 422 flat-string bodies and a 500 whose `status` is an int, not an object."""
    r422 = cassettes.first("market_data_for_a_coin", 422)
    err = error_for_response(r422.status, r422.body, headers=r422.headers, endpoint="/coins/markets")
    assert isinstance(err, BadRequestError) and "Missing parameter vs_currency" in str(err)
    r500 = cassettes.first("ohlc_data_for_one_coin_in_the_last_7_days", 500)
    assert r500.body == b'{"status":500,"error":"Internal Server Error"}'
    err = error_for_response(r500.status, r500.body, headers=r500.headers, endpoint="/coins/{id}/ohlc")
    assert isinstance(err, TransientAPIError) and "Internal Server Error" in str(err)


def test_retry_after_values() -> None:
    assert parse_retry_after("119") == 119.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    err = error_for_response(429, SHAPE1_429, headers={"Retry-After": "3600"}, endpoint="/ping")
    assert isinstance(err, RateLimitedError) and err.retry_after == 3600.0
    assert "3600" in str(err)
    # A 429 in Cloudflare's HTML (older API) is still a rate limit, not a ban.
    html429 = error_for_response(429, "<html><title>429 Too Many Requests | Cloudflare</title></html>")
    assert isinstance(html429, RateLimitedError) and html429.retry_after is None


def test_messages_never_carry_a_registered_secret() -> None:
    from kallos.log import register_secret

    register_secret("sekret-key-123456")
    err = error_for_response(401, '{"error":"Invalid key sekret-key-123456"}', endpoint="/ping")
    assert "sekret-key-123456" not in str(err)
