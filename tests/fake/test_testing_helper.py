"""kallos.fake.testing: the context manager users' tests start the fake server with."""

from __future__ import annotations

import os

import httpx

from kallos.fake import Faults
from kallos.fake.testing import fake_coingecko
from kallos.settings import load_settings


def test_fake_coingecko_exports_the_settings_and_restores_them(market) -> None:
    before = os.environ.get("KALLOS_NOW")
    with fake_coingecko(dataset=market, plan="demo", api_key="secret", set_env=True) as srv:
        settings = load_settings()
        assert settings.coingecko_base_url == srv.url
        assert settings.coingecko_plan == "demo"
        assert settings.api_key == "secret"
        assert settings.now == srv.now  # the shared clock (docs/decisions.md#D36)
        resp = httpx.get(f"{srv.url}/ping", headers={"x-cg-demo-api-key": settings.api_key})
        assert resp.status_code == 200
    assert os.environ.get("KALLOS_NOW") == before
    assert "KALLOS_COINGECKO_BASE_URL" not in os.environ


def test_faults_can_be_queued_on_a_running_server(market) -> None:
    faults = Faults()
    with (
        fake_coingecko(dataset=market, plan="public", faults=faults) as srv,
        httpx.Client(base_url=srv.url) as c,
    ):
        assert c.get("/ping").status_code == 200
        faults.extend_script(["503", None, "429"])
        assert [c.get("/ping").status_code for _ in range(4)] == [503, 200, 429, 200]
        assert faults.remaining_script == 0
        assert srv.count("/ping") == 5 and srv.count("/ping", status=503) == 1
        srv.clear_requests()
        assert srv.requests == []


def test_public_names_are_pinned() -> None:
    import kallos.fake

    assert kallos.fake.__all__ == sorted(kallos.fake.__all__)
    assert set(kallos.fake.__all__) == {
        "FAULT_NAMES",
        "CoinInfo",
        "Dataset",
        "FAKE_URL",
        "FakeClock",
        "FakeCoinGecko",
        "FakeTransport",
        "Faults",
        "RecordedRequest",
        "SimulatedMarket",
        "client_for",
        "load_csv_dataset",
    }
