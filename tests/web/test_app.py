"""The dashboard over HTTP (in-process): every page and its JSON twin, parameter checks, auth, no secrets."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from kallos.web.app import create_app

from .conftest import TOKEN, make_settings

pytestmark = pytest.mark.slow  # the session's store is a demo pipeline run (seconds, once)

PAGES = ["/", "/runs", "/quality", "/market", "/market/bitcoin", "/index", "/signals"]


def test_every_page_renders_with_data(client):
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert "Traceback" not in r.text
        assert "content-security-policy" in r.headers and r.headers["x-content-type-options"] == "nosniff"
    assert 'data-points="0"' not in client.get("/index").text  # level and drawdown drawn from stored values
    market = client.get("/market/bitcoin?ind=sma_20,rsi_14").text
    points = dict(re.findall(r'id="(\w+-chart)" data-points="(\d+)"', market))
    assert int(points["price-chart"]) > 300 and int(points["volume-chart"]) > 300
    assert int(points["indicator-chart"]) > 300


def test_each_page_has_a_json_endpoint_with_the_same_data(client):
    overview = client.get("/api/overview").json()
    assert overview["state"] == "ok" and overview["as_of"]
    runs = overview["data"]["runs"]
    assert [r["status"] for r in runs] == ["failed", "success"]
    demo = runs[1]
    assert demo["duration_seconds"] > 1  # measured, though the demo's ledger times follow its pinned clock
    tele = demo["telemetry"]
    assert tele["requests"] > 0 and tele["requests_by_status"]["200"] == tele["requests"]
    assert tele["bytes_received"] > 10_000 and tele["rows_written"] > 0
    assert {d["step"] for d in overview["data"]["due"]} >= {"universe", "market", "index"}
    assert overview["data"]["coverage"]["coins_with_market_data"] >= 7
    assert client.get("/api/runs").json()["data"]["failures"][0]["error"].startswith("RetryBudgetExceeded")
    run_id = runs[0]["run_id"]
    detail = client.get(f"/api/runs/{run_id}").json()["data"]
    assert detail["steps"][0]["telemetry"]["rate_limited"] == 3
    first = sorted(c["coin_id"] for c in client.get("/api/market").json()["data"]["coins"])[0]
    mine = client.get(f"/api/quality?coin={first}&reason=test_negative_price").json()["data"]
    assert mine["total"] == 4 and len(mine["rows"]) == 4 and {r["coin_id"] for r in mine["rows"]} == {first}
    assert mine["rows"][0]["raw"] == '{"price": -10.0}'  # down to the rows, newest first
    by_reason = client.get("/api/quality?reason=test_zero_cap").json()["data"]
    assert by_reason["total"] == 4 and {r["action"] for r in by_reason["rows"]} == {"nulled"}
    assert sum(p["events"] for p in by_reason["over_time"]["test_zero_cap"]) == 4
    market = client.get("/api/market/bitcoin?start=2024-01-01&end=2024-01-31&ind=rsi_14").json()["data"]
    assert len(market["bars"]) == 31 and market["bars"][0]["date"] == "2024-01-01" and "rsi_14" in market["bars"][0]
    assert client.get("/api/market").json()["data"]["coins"]
    index = client.get("/api/index").json()["data"]
    assert index["levels"] and index["constituents"] and index["metrics"]["max_drawdown"] <= 0
    assert index["name"] == "default" and index["names"] == ["default"]
    bitcoin = index["benchmarks"]["bitcoin buy-and-hold"]  # the index module's own benchmark, same base
    assert bitcoin[0]["date"] == index["levels"][0]["date"] and bitcoin[0]["value"] == index["levels"][0]["index_value"]
    signals = client.get("/api/signals").json()["data"]
    assert signals["latest"] and signals["evaluation"] and signals["history"]
    assert {e["horizon"] for e in signals["evaluation"]} == {1, 7, 30}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/market/no-such-coin", 404),
        ("/api/market/no-such-coin", 404),
        ("/market/Not%20A%20Coin", 422),
        ("/market/bitcoin?start=2024-02-30", 422),
        ("/api/market/bitcoin?start=yesterday", 422),
        ("/market/bitcoin?start=2024-02-01&end=2024-01-01", 422),
        ("/market/bitcoin?ind=rsi_14,drop_table", 422),
        ("/market/bitcoin?tf=minutely", 422),
        ("/runs/20990101T000000Z-deadbeef", 404),
        ("/api/runs/..%2F..%2Fetc", 404),
        ("/quality?coin=no-such-coin", 404),
        ("/quality?reason=DROP%20TABLE", 422),
        ("/api/quality?reason=never_seen", 404),
        ("/no/such/page", 404),
        ("/index?name=no-such-index", 404),
        ("/api/index?name=bad%20name", 422),
    ],
)
def test_bad_parameters_are_404_or_422_never_a_traceback(client, path, status):
    r = client.get(path)
    assert r.status_code == status, r.text[:300]
    assert "Traceback" not in r.text and 'File "' not in r.text
    if path.startswith("/api/"):
        assert r.json()["status"] == status


def test_a_store_with_no_runs_explains_what_to_run_first(tmp_path):
    from kallos.store import open_store

    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    with TestClient(create_app(make_settings(url))) as c:
        missing = c.get("/")
        assert missing.status_code == 200 and "kallos db init" in missing.text
        assert not (tmp_path / "empty.duckdb").exists()  # read-only: the dashboard creates nothing
        body = c.get("/api/overview").json()
        assert body["state"] == "no_store" and body["data"] is None
        store = open_store(url)
        store.init()
        store.close()
        page = c.get("/")
        assert page.status_code == 200 and 'id="getting-started"' in page.text and "No runs recorded yet" in page.text
        assert "kallos market backfill" in page.text
        for path in PAGES[1:4] + PAGES[5:]:
            assert c.get(path).status_code == 200, path


def test_the_token_is_required_as_a_bearer_header_when_set(dashboard_db):
    app = create_app(make_settings(dashboard_db, dashboard_token=TOKEN))
    with TestClient(app) as c:
        for path in ("/", "/api/overview", "/metrics", "/static/kallos.css"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
            assert c.get(path, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
            assert c.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/").headers["www-authenticate"].startswith("Bearer")
        assert c.get("/healthz").json() == {"status": "ok"}  # the probe only: no data behind it


def test_no_secret_appears_on_any_page_or_endpoint(dashboard_db):
    from kallos.store import open_store

    api_key = "CG-secret-api-key-abcdef"
    settings = make_settings(dashboard_db, dashboard_token=TOKEN, coingecko_api_key=api_key)
    store = open_store(dashboard_db)
    run_id = store.scalar("SELECT run_id FROM pipeline_runs ORDER BY started_at LIMIT 1")
    store.close()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings)) as c:
        paths = [*PAGES, f"/runs/{run_id}", "/metrics", "/healthz"]
        paths += ["/api/overview", "/api/runs", f"/api/runs/{run_id}", "/api/quality", "/api/market",
                  "/api/market/bitcoin", "/api/index", "/api/signals", "/market/nope",
                  "/market/bitcoin?start=x"]  # fmt: skip
        for path in paths:
            body = c.get(path, headers=auth).text
            assert TOKEN not in body and api_key not in body and "demo-key" not in body, path


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(monkeypatch, capsys):
    from kallos.cli.main import main
    from kallos.cli.serve import is_loopback

    assert main(["serve", "--host", "0.0.0.0"]) == 78
    assert "KALLOS_DASHBOARD_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("KALLOS_DASHBOARD_TOKEN", "short")
    assert main(["serve", "--host", "127.0.0.1"]) == 78
    assert "KALLOS_DASHBOARD_TOKEN" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
