"""Each injected fault, by script and by seeded rates, and the record of what the client was served."""

from __future__ import annotations

import json

import httpx
import pytest

from kallos.fake import FakeCoinGecko, Faults
from kallos.fake.responses import RATE_LIMIT_MESSAGE

H = {"x-cg-pro-api-key": "k"}


def test_scripted_faults_one_per_request(market) -> None:
    script = [
        "429",
        "429_no_retry_after",
        "429_long",
        "500",
        "502",
        "503",
        "cloudflare_403",
        "truncated_json",
        None,
        "blocked_403",
    ]
    with FakeCoinGecko(dataset=market, plan="pro", faults=Faults(script=script, retry_after=3)) as srv:
        with httpx.Client(base_url=srv.url, headers=H) as client:
            answers = [client.get("/coins/list") for _ in range(len(script) + 1)]
        assert [a.status_code for a in answers] == [429, 429, 429, 500, 502, 503, 403, 200, 200, 403, 200]
        assert answers[9].json()["status"]["error_code"] == 20000
        first, no_header, long = answers[:3]
        assert first.json() == {"status": {"error_code": 429, "error_message": RATE_LIMIT_MESSAGE}}
        assert first.headers["retry-after"] == "3"
        assert "retry-after" not in no_header.headers and no_header.json() == first.json()
        assert int(long.headers["retry-after"]) > 60
        assert answers[3].json() == {"status": 500, "error": "Internal Server Error"}
        assert answers[4].headers["content-type"].startswith("text/html")
        cloudflare = answers[6]
        assert "Access denied" in cloudflare.text and "1020" in cloudflare.text
        assert cloudflare.headers["content-type"].startswith("text/html")
        with pytest.raises(json.JSONDecodeError):
            json.loads(answers[7].content)
        assert answers[8].json() == answers[10].json()
        assert all("x-fake-now" in a.headers for a in answers)
        assert [r.fault for r in srv.requests] == [*script, None]
        assert [r.status for r in srv.requests] == [a.status_code for a in answers]


def test_slow_answers_exceed_the_client_timeout(market) -> None:
    with FakeCoinGecko(
        dataset=market, plan="pro", faults=Faults(script=["slow", None], slow_seconds=1.0)
    ) as srv:
        with httpx.Client(base_url=srv.url, headers=H, timeout=10) as client:
            with pytest.raises(httpx.TimeoutException):
                client.get("/ping", timeout=0.3)
            assert client.get("/ping").status_code == 200
    # stop() waits for the slow answer, so every request is on the record.
    assert sorted(str(r.fault) for r in srv.requests) == ["None", "slow"]


def test_disconnect_closes_without_an_answer(market) -> None:
    with FakeCoinGecko(dataset=market, plan="pro", faults=Faults(script=["disconnect"])) as srv:
        with httpx.Client(base_url=srv.url, headers=H) as client:
            with pytest.raises(httpx.TransportError):
                client.get("/ping")
            assert client.get("/ping").status_code == 200


def test_rates_are_seeded_and_bursts_repeat(market) -> None:
    def run(seed: int) -> list[int]:
        faults = Faults(rate_429=0.2, rate_5xx=0.1, burst_length=3, seed=seed)
        with FakeCoinGecko(dataset=market, plan="pro", faults=faults) as srv:
            with httpx.Client(base_url=srv.url, headers=H) as client:
                return [client.get("/ping").status_code for _ in range(40)]

    first, again, other = run(1), run(1), run(2)
    assert first == again and first != other
    assert 429 in first and any(s >= 500 for s in first) and 200 in first
    # Every random 429 opens a burst of three.
    pattern = "".join("x" if s == 429 else "." for s in first).rstrip("x")  # a burst may run past the end
    assert all(len(run) % 3 == 0 for run in pattern.split(".") if run)


def test_faults_limited_to_paths(market) -> None:
    faults = Faults(script=["503", "503"], paths=("/coins/",))
    with FakeCoinGecko(dataset=market, plan="pro", faults=faults) as srv:
        with httpx.Client(base_url=srv.url, headers=H) as client:
            assert client.get("/ping").status_code == 200
            assert client.get("/coins/list").status_code == 503
            assert client.get("/key").status_code == 200
            assert client.get("/coins/list").status_code == 503
            assert client.get("/coins/list").status_code == 200


def test_faults_parse_cli_forms() -> None:
    rates = Faults.parse("429=0.1,5xx=0.05,cloudflare=0.01")
    assert (rates.rate_429, rates.rate_5xx, rates.rate_cloudflare) == (0.1, 0.05, 0.01)
    script = Faults.parse("script:429,-,503")
    assert script.next_fault() == "429" and script.next_fault() is None and script.next_fault() == "503"
    with pytest.raises(ValueError):
        Faults(script=["teapot"])
    with pytest.raises(ValueError):
        Faults.parse("teapot=1")


def test_stopped_server_stops_answering_kept_alive_connections(market) -> None:
    srv = FakeCoinGecko(dataset=market, plan="public").start()
    with httpx.Client(base_url=srv.url) as client:
        assert client.get("/ping").status_code == 200
        srv.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/ping")
