"""The client against the fake CoinGecko server: endpoints, faults, errors, stats, secrets.

Most tests answer in-process (kallos.fake.transport: no socket, virtual time); the ones marked "socket" go over
loopback HTTP, so the transport and the HTTP server are checked to agree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kallos.coingecko.client import CoinGeckoClient
from kallos.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    PlanLimitError,
    RetryBudgetExceeded,
)
from kallos.fake import FakeClock, FakeCoinGecko, Faults, SimulatedMarket, client_for
from kallos.log import configure_logging

KEY = "test-key-9f8e7d6c5b4a"
UTC = dt.UTC


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=7, n_coins=60, start="2020-01-01", end="2024-12-31")


@pytest.fixture(scope="module")
def pro_server(market: SimulatedMarket) -> Iterator[FakeCoinGecko]:
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, rate_limit_per_minute=None) as srv:
        yield srv


@pytest.fixture(scope="module")
def pro_fake(market: SimulatedMarket) -> FakeCoinGecko:
    """The same server, not started: answered in-process."""
    return FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, rate_limit_per_minute=None)


def fake(market: SimulatedMarket, **kw: Any) -> FakeCoinGecko:
    """An unstarted fake on a virtual clock."""
    return FakeCoinGecko(dataset=market, plan=kw.pop("plan", "pro"), api_key=KEY, clock=FakeClock(), **kw)


def client(target: str | FakeCoinGecko, tmp_path: Path, **kw: Any) -> CoinGeckoClient:
    """A client of a started server's URL (over a socket) or of an unstarted fake (in-process, virtual time)."""
    opts: dict[str, Any] = {
        "plan": "pro",
        "api_key": KEY,
        "ratelimit_dir": tmp_path / "rl",
        "rate_limit_per_minute": 60_000,
        "timeout": 5.0,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "no_retry_after_wait_seconds": 0.05,
    }
    opts.update(kw)
    if isinstance(target, FakeCoinGecko):
        return client_for(target, **opts)
    return CoinGeckoClient(base_url=target, **opts)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def req_field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


# --- endpoints ----------------------------------------------------------------------------------------------


def test_endpoints_parse_into_typed_utc_models(
    pro_server: FakeCoinGecko, market: SimulatedMarket, tmp_path: Path
) -> None:
    async def go() -> dict[str, Any]:
        async with client(pro_server.url, tmp_path, rate_limit_per_minute=None) as cg:
            out: dict[str, Any] = {"ping": await cg.ping()}
            out["rate"] = cg.rate_limit_per_minute  # read from /key on pro
            out["key"] = cg.key_info_cache
            out["list"] = await cg.coins_list(include_platform=True, status="all")
            out["markets"] = await cg.coins_markets(per_page=25)
            out["coin"] = await cg.coin("bitcoin")
            out["chart"] = await cg.market_chart("bitcoin", 30)
            end = dt.datetime(2024, 12, 1, tzinfo=UTC)
            out["range"] = await cg.market_chart_range("bitcoin", end - dt.timedelta(days=200), end)
            out["range_daily"] = await cg.market_chart_range(
                "bitcoin", end - dt.timedelta(days=10), end, interval="daily"
            )
            out["ohlc"] = await cg.ohlc("bitcoin", 30)
            out["ohlc_range"] = await cg.ohlc_range("bitcoin", end - dt.timedelta(days=60), end, "daily")
            out["categories"] = await cg.categories()
            out["stats"] = cg.stats.as_dict()
            out["server_now"] = cg.server_now
            return out

    before = len(pro_server.requests)
    out = run(go())
    assert out["key"] is not None and out["rate"] == out["key"].rate_limit
    ids = [c.id for c in out["list"]]
    assert len(ids) == len(set(ids)) and "bitcoin" in ids
    assert any(c.active is False for c in out["list"]) and any(c.active for c in out["list"])
    assert any(c.platforms for c in out["list"])
    markets = out["markets"]
    assert len({m.id for m in markets}) == len(markets) > 25  # several pages, no duplicates
    assert all(m.last_updated is None or m.last_updated.tzinfo == UTC for m in markets)
    assert out["coin"].id == "bitcoin" and out["coin"].categories
    assert out["chart"].prices and all(p.ts.tzinfo == UTC for p in out["chart"].prices)
    daily = out["range"].prices
    assert all(p.ts.hour == 0 for p in daily[:-1])  # > 90 days: daily points at 00:00 UTC
    assert len(out["range_daily"].prices) in (10, 11)
    assert out["ohlc"] and out["ohlc_range"] and out["ohlc_range"][0].ts.tzinfo == UTC
    assert out["categories"] and out["categories"][0].id
    assert out["server_now"] is not None and out["server_now"].tzinfo == UTC
    stats = out["stats"]
    sent = len(pro_server.requests) - before
    assert stats["calls"] == sent and stats["credits"] == sent and stats["retries"] == 0
    for record in pro_server.requests[before:]:
        params = req_field(record, "params") or {}
        assert not any("api_key" in str(k) or KEY in str(v) for k, v in dict(params).items())
    coin_req = [
        r for r in pro_server.requests[before:] if str(req_field(r, "path")).endswith("/coins/bitcoin")
    ]
    assert coin_req and dict(req_field(coin_req[0], "params"))["localization"] == "false"
    assert dict(req_field(coin_req[0], "params"))["tickers"] == "false"


def test_from_settings_sends_the_key_in_the_plan_header(
    market: SimulatedMarket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kallos.settings import load_settings

    with FakeCoinGecko(dataset=market, plan="demo", api_key=KEY) as srv:
        monkeypatch.setenv("KALLOS_COINGECKO_PLAN", "demo")
        monkeypatch.setenv("COINGECKO_API_KEY", KEY)
        monkeypatch.setenv("KALLOS_COINGECKO_BASE_URL", srv.url)
        monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "6000")
        settings = load_settings()

        async def go() -> tuple[str, float]:
            async with CoinGeckoClient.from_settings(settings, ratelimit_dir=tmp_path) as cg:
                await cg.ping()
                return cg.base_url, cg.rate_limit_per_minute

        url, rate = run(go())
        (record,) = srv.requests
    assert url == srv.url.rstrip("/") and rate == 6000
    assert (record.key_kind, record.key_via) == ("demo", "header")
    assert record.params == {}


def test_markets_pages_deduplicate_and_stop(pro_fake: FakeCoinGecko, tmp_path: Path) -> None:
    async def go() -> tuple[int, int, int]:
        async with client(pro_fake, tmp_path) as cg:
            two = await cg.coins_markets(per_page=10, pages=2)
            by_ids = await cg.coins_markets(ids=["bitcoin", "ethereum", "bitcoin"])
            return len(two), len(by_ids), cg.stats.calls

    n_two, n_ids, calls = run(go())
    assert n_two == 20 and n_ids == 2 and calls == 3


def test_unknown_coin_fails_alone(pro_fake: FakeCoinGecko, tmp_path: Path) -> None:
    async def go() -> list[Any]:
        async with client(pro_fake, tmp_path) as cg:
            return await asyncio.gather(
                cg.market_chart("bitcoin", 7), cg.market_chart("no-such-coin-xyz", 7), return_exceptions=True
            )

    ok, missing = run(go())
    assert not isinstance(ok, Exception)
    assert isinstance(missing, NotFoundError) and missing.coin_id == "no-such-coin-xyz"
    assert "no-such-coin-xyz" in str(missing)


# --- faults: retry or fail ----------------------------------------------------------------------------------


FAULT_DECISIONS = [
    ("429", True),
    ("429_no_retry_after", True),
    ("500", True),
    ("502", True),
    ("503", True),
    ("truncated_json", True),
    ("slow", True),
    ("disconnect", True),
    ("cloudflare_403", False),
]


def check_fault_decision(target: str | FakeCoinGecko, tmp_path: Path, fault: str, retried: bool) -> None:
    logs = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=logs)

    async def go() -> Any:
        async with client(target, tmp_path, timeout=0.5) as cg:
            try:
                return await cg.market_chart("bitcoin", 7), cg.stats.as_dict()
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                return exc, cg.stats.as_dict()

    result, stats = run(go())
    if retried:
        assert not isinstance(result, Exception), result
        assert stats["calls"] == 2 and stats["retries"] == 1
        assert stats["rate_limited"] == (1 if fault.startswith("429") else 0)
        assert stats["timeouts"] == (1 if fault == "slow" else 0)
        line = next(ln for ln in logs.getvalue().splitlines() if "retrying" in ln)
        for needle in ('"endpoint": "/coins/{id}/market_chart"', '"attempt": 1', '"wait_seconds"'):
            assert needle in line
        if fault in ("429", "500", "502", "503"):
            assert f'"status": {fault[:3]}' in line
        if fault in ("slow", "disconnect"):
            assert ("after timeout" if fault == "slow" else "after connection error") in line
    else:
        assert isinstance(result, AuthError) and stats["calls"] == 1 and stats["retries"] == 0
        assert "Cloudflare" in str(result) and "1020" in str(result)


@pytest.mark.parametrize(("fault", "retried"), FAULT_DECISIONS)
def test_fault_retry_decision(market: SimulatedMarket, tmp_path: Path, fault: str, retried: bool) -> None:
    faults = Faults(script=[fault], retry_after=1, slow_seconds=1.0)
    check_fault_decision(fake(market, faults=faults), tmp_path, fault, retried)


@pytest.mark.parametrize("fault", ["slow", "disconnect", "truncated_json", "503"])
def test_fault_retry_decision_over_a_socket(market: SimulatedMarket, tmp_path: Path, fault: str) -> None:
    """Socket: the faults the transport imitates (a timeout, a hang-up) end the same over real HTTP."""
    faults = Faults(script=[fault], retry_after=1, slow_seconds=1.0)
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, faults=faults) as srv:
        check_fault_decision(srv.url, tmp_path, fault, True)


def test_retry_after_is_honoured_and_pauses_every_sharer(market: SimulatedMarket, tmp_path: Path) -> None:
    """A 429 with Retry-After: 1 delays the refused call by 1 s, and another client of the same key too."""
    srv = fake(market, faults=Faults(script=["429"], retry_after=1))
    clock = srv.clock
    assert isinstance(clock, FakeClock)

    async def go() -> tuple[float, float]:
        async with client(srv, tmp_path) as a, client(srv, tmp_path) as b:

            async def later() -> None:
                await clock.sleep(0.2)  # after a's 429
                await b.ping()

            await asyncio.gather(a.ping(), later())
            return a.stats.retry_wait_seconds, b.stats.limiter_wait_seconds

    a_waited, b_waited = run(go())
    records = sorted(srv.requests, key=lambda r: req_field(r, "time"))
    assert a_waited == pytest.approx(1.0)
    assert b_waited == pytest.approx(0.8, abs=0.01)  # b never was refused, yet waited for the shared bucket
    assert [req_field(r, "status") for r in records] == [429, 200, 200]
    first = req_field(records[0], "time")
    assert all(req_field(r, "time") - first >= 1.0 for r in records[1:])


def test_retry_after_above_ceiling_fails_clearly(market: SimulatedMarket, tmp_path: Path) -> None:
    srv = fake(market, faults=Faults(script=["429_long"], retry_after_long=120))

    async def go() -> Exception:
        async with client(srv, tmp_path, retry_after_max_seconds=30) as cg:
            with pytest.raises(RetryBudgetExceeded) as info:
                await cg.ping()
            assert cg.stats.calls == 1 and cg.stats.rate_limited == 1 and cg.stats.failures == 1
            return info.value

    err = run(go())
    assert "120" in str(err) and "KALLOS_RETRY_AFTER_MAX_SECONDS=30" in str(err)


def test_retries_are_bounded(market: SimulatedMarket, tmp_path: Path) -> None:
    srv = fake(market, faults=Faults(script=["503", "truncated_json", "503", "503"]))

    async def go() -> tuple[Exception, dict[str, Any]]:
        async with client(srv, tmp_path, max_retries=2) as cg:
            with pytest.raises(RetryBudgetExceeded) as info:
                await cg.market_chart("bitcoin", 7)
            return info.value, cg.stats.as_dict()

    err, stats = run(go())
    assert stats["calls"] == 3 and stats["retries"] == 2 and stats["failures"] == 1
    assert "after 3 attempts" in str(err) and "503" in str(err)


# --- auth and plan errors -----------------------------------------------------------------------------------


def test_demo_key_on_pro_host_says_which_plan_to_set(market: SimulatedMarket, tmp_path: Path) -> None:
    async def demo_on_pro() -> Exception:
        async with client(fake(market), tmp_path, plan="demo") as cg:
            with pytest.raises(AuthError) as info:
                await cg.ping()
            return info.value

    err = run(demo_on_pro())
    assert err.error_code == 10011 and "KALLOS_COINGECKO_PLAN=demo" in str(err)

    async def pro_on_demo() -> Exception:
        async with client(fake(market, plan="demo"), tmp_path, plan="pro") as cg:
            with pytest.raises(AuthError) as info:
                await cg.ping()
            assert cg.stats.calls == 1  # /key discovery is not even reached twice: one refusal, no retry
            return info.value

    err = run(pro_on_demo())
    assert err.error_code == 10010 and "KALLOS_COINGECKO_PLAN=pro" in str(err)


def test_missing_key_and_demo_history_limits(market: SimulatedMarket, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COINGECKO_API_KEY"):
        CoinGeckoClient(plan="pro", api_key=None)

    async def keyless() -> Exception:
        async with client(fake(market), tmp_path, plan="public", api_key=None) as cg:
            with pytest.raises(AuthError) as info:
                await cg.ping()
            return info.value

    err = run(keyless())
    assert err.error_code == 10002 and "COINGECKO_API_KEY" in str(err)

    async def demo() -> tuple[Exception, Exception]:
        async with client(fake(market, plan="demo"), tmp_path, plan="demo") as cg:
            with pytest.raises(PlanLimitError) as too_old:
                await cg.market_chart("bitcoin", "max")
            with pytest.raises(PlanLimitError) as paid:
                now = dt.datetime(2024, 12, 1, tzinfo=UTC)
                await cg.ohlc_range("bitcoin", now - dt.timedelta(days=5), now)
            return too_old.value, paid.value

    too_old, paid = run(demo())
    assert too_old.error_code == 10012 and "365" in str(too_old)
    assert paid.error_code == 10005


# --- secrets ------------------------------------------------------------------------------------------------


def test_key_never_appears_in_logs_errors_or_urls(
    market: SimulatedMarket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults(script=["503", "429", "truncated_json", None, "cloudflare_403"], retry_after=0)
    logs = io.StringIO()
    configure_logging(fmt="console", level="DEBUG", stream=logs)
    caplog.set_level(logging.DEBUG)  # also catches httpx/httpcore records, which log URLs
    errors: list[str] = []
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, faults=faults) as srv:

        async def go() -> None:
            async with client(srv.url, tmp_path) as cg:
                await cg.ping()
                for call in (cg.ping(), cg.coin("no-such-coin-xyz")):
                    try:
                        await call
                    except Exception as exc:  # noqa: BLE001
                        errors.append(str(exc) + repr(exc.__dict__))

        run(go())
        urls = [f"{req_field(r, 'path')}?{req_field(r, 'params')}" for r in srv.requests]
    assert "retrying" in logs.getvalue() and len(errors) == 2
    for text in (logs.getvalue(), caplog.text, *errors, *urls):
        assert KEY not in text


def test_a_host_that_never_resolved_is_not_retried(tmp_path: Path) -> None:
    """Issue 13 #5: a DNS failure was retried for about 70 s. `.invalid` never resolves (RFC 6761)."""
    from kallos.errors import UnresolvableHostError

    async def go() -> tuple[Exception, dict[str, Any]]:
        async with client("http://kallos-no-such-host.invalid/api/v3", tmp_path, max_retries=6) as cg:
            with pytest.raises(UnresolvableHostError) as info:
                await cg.ping()
            return info.value, cg.stats.as_dict()

    err, stats = run(go())
    assert stats["calls"] == 1 and stats["retries"] == 0
    assert "kallos-no-such-host.invalid" in str(err) and "KALLOS_COINGECKO_BASE_URL" in str(err)
    assert err.exit_code == 4
