"""Keys per plan with the real mismatch errors, the 365-day window of demo/public, the per-minute limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from kallos.fake import FakeClock, FakeCoinGecko
from kallos.fake.responses import HISTORY_LIMIT_MESSAGE, RATE_LIMIT_MESSAGE

PRO_HEADER = "x-cg-pro-api-key"
DEMO_HEADER = "x-cg-demo-api-key"


@pytest.fixture(scope="module")
def servers(market) -> Iterator[dict[str, FakeCoinGecko]]:
    with (
        FakeCoinGecko(dataset=market, plan="pro") as pro,
        FakeCoinGecko(dataset=market, plan="demo") as demo,
        FakeCoinGecko(dataset=market, plan="public") as public,
        FakeCoinGecko(dataset=market, plan="pro", api_key="right", keys={"free-one": "demo"}) as strict,
    ):
        yield {"pro": pro, "demo": demo, "public": public, "strict": strict}


def get(
    srv: FakeCoinGecko, path: str, headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    return httpx.get(f"{srv.url}{path}", headers=headers or {}, params=params, timeout=10)


def test_pro_server_accepts_the_pro_key_as_header_or_query(servers) -> None:
    pro = servers["pro"]
    assert get(pro, "/ping", {PRO_HEADER: "k"}).status_code == 200
    assert get(pro, "/ping", x_cg_pro_api_key="k").status_code == 200
    assert get(pro, "/key", {PRO_HEADER: "k"}).json()["rate_limit_request_per_minute"] > 0
    recorded = pro.requests[-1]
    assert recorded.has_key and recorded.key_kind == "pro" and recorded.headers[PRO_HEADER] == "***"
    via_query = pro.requests[-2]
    assert via_query.key_via == "query" and "x_cg_pro_api_key" not in via_query.params


def test_missing_key_is_10002(servers) -> None:
    for plan in ("pro", "demo"):
        resp = get(servers[plan], "/coins/list")
        assert resp.status_code == 401
        assert resp.json()["status"]["error_code"] == 10002


def test_demo_key_on_pro_host_is_10011(servers) -> None:
    resp = get(servers["pro"], "/ping", {DEMO_HEADER: "k"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error_code"] == 10011 and set(body) == {"timestamp", "error_code", "status"}
    assert (
        "change your root URL from pro-api.coingecko.com to api.coingecko.com"
        in body["status"]["error_message"]
    )
    assert get(servers["pro"], "/ping", x_cg_demo_api_key="k").json()["error_code"] == 10011


def test_pro_key_on_public_host_is_10010(servers) -> None:
    for plan in ("demo", "public"):
        resp = get(servers[plan], "/ping", {PRO_HEADER: "k"})
        assert resp.status_code == 400 and resp.json()["error_code"] == 10010
        assert "from api.coingecko.com to pro-api.coingecko.com" in resp.json()["status"]["error_message"]


def test_demo_and_public_accept_their_keys(servers) -> None:
    assert get(servers["demo"], "/ping", {DEMO_HEADER: "k"}).status_code == 200
    assert get(servers["demo"], "/ping", x_cg_demo_api_key="k").status_code == 200
    assert get(servers["public"], "/ping").status_code == 200
    assert get(servers["public"], "/ping", {DEMO_HEADER: "k"}).status_code == 200
    resp = get(servers["demo"], "/key", {DEMO_HEADER: "k"})
    assert resp.status_code == 401 and resp.json()["status"]["error_code"] == 10005


def test_configured_key_and_key_plans(servers) -> None:
    strict = servers["strict"]
    assert get(strict, "/ping", {PRO_HEADER: "right"}).status_code == 200
    wrong = get(strict, "/ping", {PRO_HEADER: "wrong"})
    assert wrong.status_code == 401 and wrong.json()["status"]["error_code"] == 10002
    # A demo key sent in the pro header is still a demo key (the real API knows its keys).
    demo_key = get(strict, "/ping", {PRO_HEADER: "free-one"})
    assert demo_key.status_code == 400 and demo_key.json()["error_code"] == 10011


@pytest.mark.parametrize("plan", ["demo", "public"])
def test_history_window_of_365_days(servers, plan: str) -> None:
    srv = servers[plan]
    headers = {DEMO_HEADER: "k"} if plan == "demo" else {}
    now = int(srv.now.timestamp())

    def expect_10012(resp: httpx.Response) -> None:
        assert resp.status_code == 401
        status = resp.json()["error"]["status"]
        assert status["error_code"] == 10012 and status["error_message"] == HISTORY_LIMIT_MESSAGE
        dt.datetime.fromisoformat(status["timestamp"])

    for days in ("366", "max", "1000"):
        expect_10012(get(srv, "/coins/bitcoin/market_chart", headers, vs_currency="usd", days=days))
    expect_10012(
        get(
            srv,
            "/coins/bitcoin/market_chart/range",
            headers,
            vs_currency="usd",
            **{"from": str(now - 400 * 86_400), "to": str(now - 300 * 86_400)},
        )
    )
    expect_10012(get(srv, "/coins/bitcoin/ohlc", headers, vs_currency="usd", days="max"))
    expect_10012(get(srv, "/coins/bitcoin/history", headers, date="01-01-2021"))
    ok = get(srv, "/coins/bitcoin/market_chart", headers, vs_currency="usd", days="365")
    assert ok.status_code == 200 and len(ok.json()["prices"]) == 366
    assert get(srv, "/coins/bitcoin/ohlc", headers, vs_currency="usd", days="365").status_code == 200
    assert (
        get(
            srv,
            "/coins/bitcoin/market_chart/range",
            headers,
            vs_currency="usd",
            **{"from": str(now - 365 * 86_400), "to": str(now)},
        ).status_code
        == 200
    )
    # Pro has full history.
    assert (
        get(
            servers["pro"], "/coins/bitcoin/market_chart", {PRO_HEADER: "k"}, vs_currency="usd", days="max"
        ).status_code
        == 200
    )


def test_rate_limit_sliding_window_with_retry_after(market) -> None:
    clock = FakeClock(start=1000.0)
    with FakeCoinGecko(dataset=market, plan="demo", rate_limit_per_minute=3, clock=clock) as srv:
        with httpx.Client(base_url=srv.url, headers={DEMO_HEADER: "k"}) as client:
            for step in (0.0, 10.0, 20.0):
                clock.now += step
                assert client.get("/ping").status_code == 200
            clock.now += 5.0  # t = 1035: the first call (t = 1000) leaves the window at 1060
            limited = client.get("/ping")
            assert limited.status_code == 429
            assert limited.json() == {"status": {"error_code": 429, "error_message": RATE_LIMIT_MESSAGE}}
            assert limited.headers["retry-after"] == "25"
            clock.now += 24.0
            assert (
                client.get("/ping").status_code == 429
            )  # still inside the window: a sliding, not fixed, one
            clock.now += 1.5
            assert client.get("/ping").status_code == 200  # the first call slid out
            assert client.get("/ping").status_code == 429  # the second (t = 1010) leaves at 1070
        # Refused calls do not count toward the window; each key has its own.
        with httpx.Client(base_url=srv.url, headers={DEMO_HEADER: "other"}) as other:
            assert other.get("/ping").status_code == 200
        statuses = [r.status for r in srv.requests]
        assert statuses == [200, 200, 200, 429, 429, 200, 429, 200]


def test_key_endpoint_counts_successful_calls(market) -> None:
    with FakeCoinGecko(dataset=market, plan="pro", rate_limit_per_minute=250) as srv:
        with httpx.Client(base_url=srv.url, headers={PRO_HEADER: "k"}) as client:
            client.get("/ping")
            client.get("/coins/nope")
            info = client.get("/key").json()
        assert info["rate_limit_request_per_minute"] == 250
        assert info["current_total_monthly_calls"] == 1
        assert info["current_remaining_monthly_calls"] == info["monthly_call_credit"] - 1


def test_per_page_bounds_and_pagination(servers) -> None:
    pro = servers["pro"]
    h = {PRO_HEADER: "k"}
    assert get(pro, "/coins/markets", h, vs_currency="usd", per_page="251").status_code == 400
    assert get(pro, "/coins/markets", h, vs_currency="usd", per_page="0").status_code == 400
    everything = get(pro, "/coins/markets", h, vs_currency="usd", per_page="250").json()
    pages = []
    page = 1
    while True:
        rows = get(pro, "/coins/markets", h, vs_currency="usd", per_page="7", page=str(page)).json()
        pages.extend(rows)
        if len(rows) < 7:
            break
        page += 1
    assert [r["id"] for r in pages] == [r["id"] for r in everything]
    assert get(pro, "/coins/markets", h, vs_currency="usd", per_page="7", page="99").json() == []


def test_key_file_names_the_valid_keys(market, tmp_path) -> None:
    from kallos.fake.server import load_keys_file

    path = tmp_path / "keys.txt"
    path.write_text("# key plan\npaid-1 pro\nfree-1 demo\n")
    keys = load_keys_file(str(path))
    assert keys == {"paid-1": "pro", "free-1": "demo"}
    with FakeCoinGecko(dataset=market, plan="pro", keys=keys) as srv:
        assert get(srv, "/ping", {PRO_HEADER: "paid-1"}).status_code == 200
        assert get(srv, "/ping", {PRO_HEADER: "stranger"}).json()["status"]["error_code"] == 10002
        assert get(srv, "/ping", {PRO_HEADER: "free-1"}).json()["error_code"] == 10011
    bad = tmp_path / "bad.json"
    bad.write_text('{"k": "gold"}')
    with pytest.raises(ValueError):
        load_keys_file(str(bad))
