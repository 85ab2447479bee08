"""The simulated market's promises, and the CSV loader on the real CoinGecko exports."""

from __future__ import annotations

import datetime as dt

import httpx
import numpy as np
import pytest

from kallos.fake import FakeCoinGecko, SimulatedMarket, load_csv_dataset
from kallos.fake.dataset import DAY_MS, datetime_to_ms

from .cassettes import SHARED_DATA

H = {"x-cg-pro-api-key": "k"}


@pytest.fixture(scope="module")
def full_market() -> SimulatedMarket:
    return SimulatedMarket(seed=7, n_coins=60, start="2014-01-01", end="2024-12-31")


def test_default_market_size_and_clock(full_market: SimulatedMarket) -> None:
    assert len(full_market.coins) == 60
    assert full_market.n_days - 1 >= 10 * 365
    assert full_market.now == dt.datetime(2024, 12, 31, 15, tzinfo=dt.UTC)  # last date + 15 h


def test_deterministic_for_its_seed() -> None:
    a = SimulatedMarket(seed=3, n_coins=25, start="2020-01-01", end="2021-12-31")
    b = SimulatedMarket(seed=3, n_coins=25, start="2020-01-01", end="2021-12-31")
    c = SimulatedMarket(seed=4, n_coins=25, start="2020-01-01", end="2021-12-31")
    assert a.coin_ids() == b.coin_ids()
    np.testing.assert_array_equal(a.price, b.price)
    np.testing.assert_array_equal(a.market_cap, b.market_cap)
    np.testing.assert_array_equal(a.bridge, b.bridge)
    assert not np.allclose(np.nan_to_num(a.price), np.nan_to_num(c.price))


def test_coin_kinds_behave(full_market: SimulatedMarket) -> None:
    m = full_market
    frame = m.to_frame()
    closes = frame.pivot(index="date", columns="coin_id", values="close")
    for stable in ("tether", "dai"):
        assert closes[stable].dropna().between(0.95, 1.05).all()
    usdc = closes["usd-coin"].dropna()
    assert set(usdc[~usdc.between(0.95, 1.05)].index.strftime("%Y-%m-%d")) == {"2023-03-11", "2023-03-12"}
    doge = closes["dogecoin"]
    assert doge["2021-01-28"] / doge["2021-01-27"] > 3 and doge["2021-01-29"] / doge["2021-01-28"] < 1 / 3
    ratio = (closes["wrapped-bitcoin"] / closes["bitcoin"]).dropna()
    assert ratio.between(0.98, 1.02).all() and len(ratio) > 1000
    assert (closes["staked-ether"] / closes["ethereum"]).dropna().between(0.9, 1.02).all()
    # Late listings: coins whose first day is years after the start.
    firsts = frame.groupby("coin_id")["date"].min()
    assert (firsts > "2020-01-01").sum() >= 10
    # Null and zero market caps, zero volumes, missing days.
    caps = frame.pivot(index="date", columns="coin_id", values="market_cap")
    assert caps["weth"].isna().sum() >= 100
    assert (caps["shiba-inu"] == 0).sum() >= 200
    assert np.isnan(caps.loc["2017-04-02", "bitcoin"])
    assert (frame.loc[frame.coin_id == "bitcoin", "volume"] == 0).sum() >= 10
    spans = frame.groupby("coin_id")["date"].agg(["min", "max", "count"])
    gaps = (spans["max"] - spans["min"]).dt.days + 1 - spans["count"]
    assert (gaps > 0).sum() >= 5
    # Daily OHLC consistent with the closes: open = previous close, high/low bracket them.
    btc = frame[frame.coin_id == "bitcoin"].set_index("date").iloc[1:]  # day one has no previous close
    assert (btc["high"] >= btc[["open", "close"]].max(axis=1)).all()
    assert (btc["low"] <= btc[["open", "close"]].min(axis=1)).all()
    consecutive = np.diff(btc.index.to_numpy()) == np.timedelta64(1, "D")
    np.testing.assert_array_equal(
        btc["open"].to_numpy()[1:][consecutive], btc["close"].to_numpy()[:-1][consecutive]
    )
    # Fat tails: excess kurtosis of bitcoin's daily log returns.
    r = np.diff(np.log(btc["close"].to_numpy()))
    assert ((r - r.mean()) ** 4).mean() / r.var() ** 2 > 4


def test_delisted_coins_only_with_status_inactive(full_market: SimulatedMarket) -> None:
    with (
        FakeCoinGecko(dataset=full_market, plan="pro") as srv,
        httpx.Client(base_url=srv.url, headers=H) as client,
    ):
        active = {c["id"] for c in client.get("/coins/list").json()}
        inactive = {c["id"] for c in client.get("/coins/list", params={"status": "inactive"}).json()}
        assert {"nebulacoin", "aurora-cash", "terraform-usd", "quantum-ledger"} <= inactive
        assert not active & inactive and len(active | inactive) == 60
        markets = {
            r["id"]
            for r in client.get("/coins/markets", params={"vs_currency": "usd", "per_page": 250}).json()
        }
        assert markets == active
        # Their history is still served (the real API keeps inactive ids on historical endpoints).
        chart = client.get(
            "/coins/terraform-usd/market_chart/range",
            params={"vs_currency": "usd", "from": "2022-01-01", "to": "2022-12-31"},
        ).json()
        prices = [p[1] for p in chart["prices"]]
        assert prices and prices[-1] < 0.2 and max(prices) > 0.95  # the broken peg
        last_day = dt.datetime.fromtimestamp(chart["prices"][-1][0] / 1000, dt.UTC).date()
        assert last_day < dt.date(2022, 12, 31)


def test_categories_in_details_and_markets(full_market: SimulatedMarket) -> None:
    with (
        FakeCoinGecko(dataset=full_market, plan="pro") as srv,
        httpx.Client(base_url=srv.url, headers=H) as client,
    ):
        expected = {
            "stablecoins": {"tether", "usd-coin", "dai"},
            "wrapped-tokens": {"wrapped-bitcoin", "weth"},
            "liquid-staking-tokens": {"staked-ether", "wrapped-steth"},
        }
        for category, coins in expected.items():
            ids = {
                r["id"]
                for r in client.get(
                    "/coins/markets", params={"vs_currency": "usd", "category": category}
                ).json()
            }
            assert coins <= ids
            for coin in coins:
                detail = client.get(
                    f"/coins/{coin}", params={"localization": "false", "tickers": "false"}
                ).json()
                assert category in {d["id"] for d in detail["categories_details"]}
        assert "terraform-usd" not in {
            r["id"]
            for r in client.get(
                "/coins/markets", params={"vs_currency": "usd", "category": "stablecoins"}
            ).json()
        }


def test_moving_the_clock_changes_what_is_served(market) -> None:
    with (
        FakeCoinGecko(dataset=market, plan="pro") as srv,
        httpx.Client(base_url=srv.url, headers=H) as client,
    ):
        srv.now = dt.datetime(2023, 6, 1, 0, 20, tzinfo=dt.UTC)
        resp = client.get("/coins/bitcoin/market_chart", params={"vs_currency": "usd", "days": "100"})
        assert resp.headers["x-fake-now"] == "2023-06-01T00:20:00Z"
        prices = resp.json()["prices"]
        assert prices[-1][0] == datetime_to_ms(srv.now)
        assert prices[-2][0] == datetime_to_ms(dt.datetime(2023, 6, 1, tzinfo=dt.UTC))
        with pytest.raises(ValueError):
            srv.now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


# ---------------------------------------------------------------------- CSV exports (real data)


@pytest.fixture(scope="module")
def csv_dataset():
    folders = [SHARED_DATA / f"coingecko_csv_{n}" for n in ("TylerIlunga", "maciejnems", "zy3110")]
    if not all(f.is_dir() for f in folders):
        pytest.skip(f"CoinGecko CSV exports not available under {SHARED_DATA}")
    return load_csv_dataset(
        folders,
        mapping=SHARED_DATA / "coingecko_csv_ids.csv",
        ohlc=SHARED_DATA / "cryptodatadownload_janironn",
    )


@pytest.fixture(scope="module")
def csv_client(csv_dataset):
    with (
        FakeCoinGecko(dataset=csv_dataset, plan="pro") as srv,
        httpx.Client(base_url=srv.url, headers=H) as client,
    ):
        yield client


def test_csv_union_and_mapping(csv_dataset) -> None:
    assert len(csv_dataset.coins) == 52
    ids = set(csv_dataset.coin_ids())
    assert {"bitcoin", "avalanche-2", "havven", "matic-network", "uniswap", "tether"} <= ids
    assert csv_dataset.now == dt.datetime(2023, 11, 30, 15, tzinfo=dt.UTC)
    tether = csv_dataset.coins[csv_dataset.coin("tether")]
    assert "stablecoins" in tether.categories


def test_csv_values_served_as_exported(csv_client: httpx.Client) -> None:
    chart = csv_client.get("/coins/bitcoin/market_chart", params={"vs_currency": "usd", "days": "max"}).json()
    prices = chart["prices"]
    assert prices[0] == [1367107200000, 135.3] and prices[1] == [1367193600000, 141.96]
    days = {dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date() for ts, _ in prices}
    assert dt.date(2013, 6, 4) not in days and dt.date(2015, 1, 28) not in days  # missing at the source
    caps = dict((ts, v) for ts, v in chart["market_caps"])
    assert caps[datetime_to_ms(dt.datetime(2017, 4, 2, tzinfo=dt.UTC))] is None
    off_midnight = [ts for ts, _ in prices[:-1] if ts % DAY_MS]
    assert datetime_to_ms(dt.datetime(2018, 1, 30, 0, 5, 18, tzinfo=dt.UTC)) in off_midnight


def test_csv_series_ending_early_are_delisted(csv_client: httpx.Client) -> None:
    inactive = {c["id"] for c in csv_client.get("/coins/list", params={"status": "inactive"}).json()}
    active = {c["id"] for c in csv_client.get("/coins/list").json()}
    assert "terra-luna" in inactive and "bitcoin" in active and "ethereum-classic" in active
    usdc = csv_client.get(
        "/coins/usd-coin/market_chart/range",
        params={"vs_currency": "usd", "from": "2022-01-01", "to": "2022-12-31"},
    ).json()
    assert usdc["prices"]  # delisted ids still answer historical requests


def test_exchange_bars_are_the_daily_candles(csv_client: httpx.Client) -> None:
    rows = csv_client.get(
        "/coins/bitcoin/ohlc/range",
        params={"vs_currency": "usd", "from": "2021-10-10", "to": "2021-10-17", "interval": "daily"},
    ).json()
    by_close = {dt.datetime.fromtimestamp(r[0] / 1000, dt.UTC).date(): r[1:] for r in rows}
    # Bitstamp's bar of 2021-10-16 closes at 2021-10-17 00:00 -> CoinGecko day 2021-10-17 (docs/decisions.md#D2).
    assert by_close[dt.date(2021, 10, 17)] == [61703.45, 61771.12, 61290.54, 61290.54]


def test_csv_intraday_is_interpolated_through_the_daily_values(csv_client: httpx.Client) -> None:
    frm = datetime_to_ms(dt.datetime(2021, 3, 1, tzinfo=dt.UTC)) // 1000
    hourly = csv_client.get(
        "/coins/bitcoin/market_chart/range",
        params={"vs_currency": "usd", "from": str(frm), "to": str(frm + 3 * 86400)},
    ).json()
    daily = csv_client.get(
        "/coins/bitcoin/market_chart/range",
        params={"vs_currency": "usd", "from": str(frm - 200 * 86400), "to": str(frm + 3 * 86400)},
    ).json()
    by_day = {ts: v for ts, v in daily["prices"]}
    midnights = [
        (ts // DAY_MS * DAY_MS, v) for ts, v in hourly["prices"] if ts // 3_600_000 * 3_600_000 % DAY_MS == 0
    ]
    assert len(midnights) == 4 and all(by_day[t] == v for t, v in midnights)


def test_csv_loader_without_mapping_picks_up_bars_beside_the_exports(tmp_path) -> None:
    export = SHARED_DATA / "coingecko_csv_zy3110" / "btc-usd-max.csv"
    bars = SHARED_DATA / "cryptodatadownload_janironn" / "Bitstamp_BTCUSD_d.csv"
    if not (export.exists() and bars.exists()):
        pytest.skip(f"real data not available under {SHARED_DATA}")
    (tmp_path / "btc-usd-max.csv").write_bytes(export.read_bytes())
    (tmp_path / "Bitstamp_BTCUSD_d.csv").write_bytes(bars.read_bytes())
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")  # not bars: ignored
    ds = load_csv_dataset(tmp_path)
    assert ds.coin_ids() == ["btc"]  # no mapping: the text before -usd-max
    assert ds.ohlc_coins == {"btc"}
    c = ds.coin("btc")
    k = (dt.date(2021, 10, 17) - dt.date(1970, 1, 1)).days - ds.start_day
    assert [ds.ohlc[col][c, k] for col in ("open", "high", "low", "close")] == [
        61703.45,
        61771.12,
        61290.54,
        61290.54,
    ]
