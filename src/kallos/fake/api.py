"""The endpoints: a dataset and the server's clock in, CoinGecko-shaped JSON out (no HTTP here).

Granularity, OHLC whitelists, candle sizes, the 365-day window of demo and public plans and the pro-only
parameters follow docs/decisions.md (C-API.4); where the real API's behaviour is unknown the choice is written
in docs/fake-server.md.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from kallos.fake import responses as r
from kallos.fake.dataset import (
    CATEGORY_NAMES,
    DAY_MS,
    HOUR_MS,
    Dataset,
    category_name,
    datetime_to_ms,
    iso_ms,
    now_text,
)

MIN5_MS = 300_000
OHLC_DAYS = ("1", "7", "14", "30", "90", "180", "365", "max")
OHLC_DAILY_DAYS = {"1", "7", "14", "30", "90", "180"}
OHLC_HOURLY_DAYS = {"1", "7", "14", "30", "90"}
PRICE_CHANGE_WINDOWS = {
    "1h": HOUR_MS,
    "24h": DAY_MS,
    "7d": 7 * DAY_MS,
    "14d": 14 * DAY_MS,
    "30d": 30 * DAY_MS,
    "200d": 200 * DAY_MS,
    "1y": 365 * DAY_MS,
}
DETAIL_WINDOWS = ("24h", "7d", "14d", "30d", "60d", "200d", "1y")
# Fixed conversion rates from USD (the simulated world has no FX market; documented as constant).
VS_CURRENCIES: dict[str, float] = {
    "usd": 1.0,
    "eur": 0.92,
    "gbp": 0.79,
    "jpy": 150.0,
    "chf": 0.88,
    "cad": 1.36,
    "aud": 1.52,
    "nzd": 1.65,
    "cny": 7.2,
    "hkd": 7.8,
    "sgd": 1.34,
    "myr": 4.7,
    "inr": 83.0,
    "krw": 1330.0,
    "brl": 5.0,
    "mxn": 17.0,
    "rub": 92.0,
    "try": 32.0,
    "zar": 18.5,
    "sek": 10.5,
    "nok": 10.7,
    "dkk": 6.9,
    "pln": 4.0,
    "idr": 15700.0,
    "thb": 36.0,
    "php": 56.0,
    "vnd": 24500.0,
    "aed": 3.67,
    "sar": 3.75,
    "bmd": 1.0,
}
MARKET_ORDERS = ("market_cap_desc", "market_cap_asc", "volume_desc", "volume_asc", "id_asc", "id_desc")
CATEGORY_ORDERS = (
    "market_cap_desc",
    "market_cap_asc",
    "name_desc",
    "name_asc",
    "market_cap_change_24h_desc",
    "market_cap_change_24h_asc",
)


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else v


def _int_or_none(value: float | None) -> int | float | None:
    v = _num(value)
    if v is None:
        return None
    return int(round(v)) if abs(v) < 9e18 else v


class RawJSON(str):
    """An answer already encoded as JSON (charts are large: encoding them by hand is 4x faster)."""


def _pairs_json(ts: np.ndarray, values: np.ndarray) -> str:
    """``[[ts, value], ...]`` with NaN as null; float repr is the shortest round-trip form, as json uses."""
    items = [
        f"[{t},{v!r}]" if v == v else f"[{t},null]" for t, v in zip(ts.tolist(), values.tolist(), strict=True)
    ]
    return "[" + ",".join(items) + "]"


def _bool(params: dict[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() == "true"


def _parse_time(value: str, name: str) -> int:
    """UNIX seconds, or (since 2025) ISO ``YYYY-MM-DD`` / ``YYYY-MM-DDTHH:MM`` -> epoch ms."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not -1e11 < seconds < 1e11:  # also rejects nan and inf
            raise r.flat(400, f"invalid {name}")
        return int(round(seconds * 1000))
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise r.flat(400, f"invalid {name}") from None
    return datetime_to_ms(parsed)


def _memo(method: Any) -> Any:
    """Cache a per-coin computation by its arguments (the dataset never changes; `now` is an argument)."""

    def wrapper(self: Api, *args: Any) -> Any:
        key = (method.__name__, *args)
        try:
            return self._memo[key]
        except KeyError:
            pass
        if len(self._memo) > 50_000:
            self._memo.clear()
        value = self._memo[key] = method(self, *args)
        return value

    return wrapper


class Api:
    """Route a request (path below /api/v3 and its query) to a JSON answer, or raise ApiError."""

    def __init__(self, dataset: Dataset, plan: str) -> None:
        self.ds = dataset
        self.plan = plan
        self._memo: dict[tuple[Any, ...], Any] = {}

    # ------------------------------------------------------------------ entry point
    def handle(self, path: str, params: dict[str, str], now: dt.datetime) -> Any:
        now_ms = datetime_to_ms(now)
        parts = [p for p in path.split("/") if p]
        if parts == ["ping"]:
            return {"gecko_says": "(V3) To the Moon!", "fake_now": now_text(now)}
        if parts == ["global"]:
            return self.global_data(now_ms)
        if parts[:1] != ["coins"] or len(parts) < 2:
            raise r.flat(404, "Incorrect path. Please check https://docs.coingecko.com/")
        if parts == ["coins", "list"]:
            return self.coins_list(params, now_ms)
        if parts == ["coins", "markets"]:
            return self.markets(params, now_ms)
        if parts == ["coins", "categories", "list"]:
            return [{"category_id": cid, "name": name} for cid, name in sorted(CATEGORY_NAMES.items())]
        if parts == ["coins", "categories"]:
            return self.categories(params, now_ms)
        c = self.ds.coin(parts[1])
        if c is None or not self.ds.is_listed(c, now_ms):
            raise r.coin_not_found()
        rest = parts[2:]
        if rest == []:
            return self.coin_detail(c, params, now_ms)
        if rest == ["market_chart"]:
            return self.market_chart(c, params, now_ms, now)
        if rest == ["market_chart", "range"]:
            return self.market_chart_range(c, params, now_ms, now)
        if rest == ["ohlc"]:
            return self.ohlc(c, params, now_ms, now)
        if rest == ["ohlc", "range"]:
            return self.ohlc_range(c, params, now_ms, now)
        if rest == ["history"]:
            return self.history(c, params, now_ms, now)
        raise r.flat(404, "Incorrect path. Please check https://docs.coingecko.com/")

    # ------------------------------------------------------------------ helpers
    @property
    def paid(self) -> bool:
        return self.plan == "pro"

    def _vs(self, params: dict[str, str]) -> float:
        vs = params.get("vs_currency")
        if vs is None or vs == "":
            raise r.missing_parameter("vs_currency")
        rate = VS_CURRENCIES.get(vs.strip().lower())
        if rate is None:
            raise r.flat(400, "invalid vs_currency")
        return rate

    def _check_window(self, from_ms: int, now_ms: int, now: dt.datetime) -> None:
        """Demo and public: nothing older than 365 days (compared as UTC dates, a day of slack)."""
        if not self.paid and from_ms // DAY_MS < now_ms // DAY_MS - 365:
            raise r.history_limit(now)

    # ------------------------------------------------------------------ /coins/list
    def coins_list(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        status = (params.get("status") or "active").lower()
        if status not in ("active", "inactive"):
            raise r.flat(400, "invalid status")
        want_inactive = status == "inactive"
        platforms = _bool(params, "include_platform", False)
        rows = []
        for c, coin in enumerate(self.ds.coins):
            if not self.ds.is_listed(c, now_ms) or self.ds.is_inactive(c, now_ms) != want_inactive:
                continue
            row: dict[str, Any] = {"id": coin.id, "symbol": coin.symbol, "name": coin.name}
            if platforms:
                row["platforms"] = {k: v for k, v in coin.platforms.items() if k}
            rows.append(row)
        rows.sort(key=lambda x: x["id"])
        return rows

    # ------------------------------------------------------------------ current values
    @_memo
    def _current(self, c: int, now_ms: int) -> dict[str, float | None]:
        ds = self.ds
        t = min(now_ms, ds.end_ms(c))
        times = np.array([t, t - DAY_MS, ds.first_ms(c)], dtype=np.int64)
        p, m, v = ds.values_at(c, times)
        return {
            "t": t,
            "price": _num(p[0]),
            "cap": _num(m[0]),
            "vol": _num(v[0]),
            "price_24h": _num(p[1]),
            "cap_24h": _num(m[1]),
        }

    def _active(self, now_ms: int) -> list[int]:
        return [
            c
            for c in range(len(self.ds.coins))
            if self.ds.is_listed(c, now_ms) and not self.ds.is_inactive(c, now_ms)
        ]

    def _ranks(self, now_ms: int, currents: dict[int, dict[str, Any]]) -> dict[int, int]:
        capped = [
            (cur["cap"], self.ds.coins[c].id, c)
            for c, cur in currents.items()
            if cur["cap"] is not None and cur["cap"] > 0
        ]
        capped.sort(key=lambda x: (-x[0], x[1]))
        return {c: i + 1 for i, (_, _, c) in enumerate(capped)}

    @_memo
    def _hl(self, c: int, t0: int, t1: int) -> tuple[float | None, float | None]:
        grid = np.arange(-(-t0 // HOUR_MS) * HOUR_MS, t1 + 1, HOUR_MS, dtype=np.int64)
        p, _, _ = self.ds.values_at(c, np.concatenate([[t0], grid, [t1]]).astype(np.int64))
        p = p[~np.isnan(p)]
        if p.size == 0:
            return None, None
        return float(p.max()), float(p.min())

    @_memo
    def _extremes(self, c: int, now_ms: int) -> tuple[float | None, int, float | None, int]:
        ds = self.ds
        k = np.arange(ds.first[c], min(ds.last[c], now_ms // DAY_MS - ds.start_day) + 1)
        k = k[ds.present[c, k]] if k.size else k
        if k.size == 0:
            return None, 0, None, 0
        prices = ds.price[c, k]
        hi, lo = int(np.nanargmax(prices)), int(np.nanargmin(prices))
        return float(prices[hi]), int(ds.day_ms(k[hi])), float(prices[lo]), int(ds.day_ms(k[lo]))

    def _supply(self, c: int, cur: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
        coin = self.ds.coins[c]
        circ = None
        if cur["cap"] is not None and cur["price"]:
            circ = cur["cap"] / cur["price"]
        total = getattr(self.ds, "total_supply", None)
        total_supply: float | None
        if total is not None:
            k = min(int(cur["t"]) // DAY_MS - self.ds.start_day, self.ds.n_days - 1)
            total_supply = _num(total[c, k])
        else:
            total_supply = circ
        return circ, total_supply, coin.max_supply

    def _image(self, c: int, size: str = "large") -> str:
        coin = self.ds.coins[c]
        return (
            f"https://coin-images.coingecko.com/coins/images/{coin.image_id}/{size}/{coin.id}.png?1696501400"
        )

    # ------------------------------------------------------------------ /coins/markets
    def markets(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        rate = self._vs(params)
        try:
            per_page = int(params.get("per_page") or 100)
            page = int(params.get("page") or 1)
        except ValueError:
            raise r.flat(400, "invalid per_page or page") from None
        if not 1 <= per_page <= 250:
            raise r.flat(400, "per_page must be between 1 and 250")
        if page < 1:
            raise r.flat(400, "invalid page")
        order = params.get("order") or "market_cap_desc"
        if order not in MARKET_ORDERS:
            raise r.flat(400, "invalid order")
        windows = [w.strip() for w in (params.get("price_change_percentage") or "").split(",") if w.strip()]
        for w in windows:
            if w not in PRICE_CHANGE_WINDOWS:
                raise r.flat(400, "invalid price_change_percentage")
        active = self._active(now_ms)
        currents = {c: self._current(c, now_ms) for c in active}
        ranks = self._ranks(now_ms, currents)
        selected = active
        category = params.get("category")
        ids = params.get("ids")
        if category:
            selected = [c for c in active if category in self.ds.coins[c].categories]
        elif ids:
            wanted = {i.strip() for i in ids.split(",") if i.strip()}
            selected = [c for c in active if self.ds.coins[c].id in wanted]
        else:
            for key, attr in (("names", "name"), ("symbols", "symbol")):
                if params.get(key):
                    wanted = {i.strip().lower() for i in params[key].split(",") if i.strip()}
                    selected = [c for c in active if getattr(self.ds.coins[c], attr).lower() in wanted]
                    break

        def cap_key(c: int) -> float:
            cap = currents[c]["cap"]
            return cap if cap is not None else -1.0

        ids_of = {c: self.ds.coins[c].id for c in selected}
        if order.startswith("market_cap"):
            selected = sorted(selected, key=lambda c: (-cap_key(c), ids_of[c]))
            if order.endswith("asc"):
                selected.reverse()
        elif order.startswith("volume"):
            selected = sorted(selected, key=lambda c: (-(currents[c]["vol"] or 0.0), ids_of[c]))
            if order.endswith("asc"):
                selected.reverse()
        else:
            selected = sorted(selected, key=lambda c: ids_of[c], reverse=order == "id_desc")
        chunk = selected[(page - 1) * per_page : page * per_page]
        sparkline = _bool(params, "sparkline", False)
        return [
            self._market_row(c, currents[c], ranks.get(c), rate, now_ms, windows, sparkline) for c in chunk
        ]

    def _market_row(
        self,
        c: int,
        cur: dict[str, Any],
        rank: int | None,
        rate: float,
        now_ms: int,
        windows: list[str],
        sparkline: bool,
    ) -> dict[str, Any]:
        coin = self.ds.coins[c]
        t = int(cur["t"])
        price, cap, vol = cur["price"], cur["cap"], cur["vol"]
        high, low = self._hl(c, t - DAY_MS, t)
        ath, ath_ms, atl, atl_ms = self._extremes(c, now_ms)
        if price is not None and ath is not None and price > ath:
            ath, ath_ms = price, t
        if price is not None and atl is not None and price < atl:
            atl, atl_ms = price, t
        circ, total, max_supply = self._supply(c, cur)
        fdv_supply = max_supply or total

        def conv(x: float | None) -> float | None:
            return None if x is None else x * rate

        p24, cap24 = cur["price_24h"], cur["cap_24h"]
        row: dict[str, Any] = {
            "id": coin.id,
            "symbol": coin.symbol,
            "name": coin.name,
            "image": self._image(c),
            "current_price": conv(price),
            "market_cap": _int_or_none(conv(cap)) if cap is not None else None,
            "market_cap_rank": rank,
            "fully_diluted_valuation": _int_or_none(conv(price * fdv_supply))
            if price and fdv_supply
            else None,
            "total_volume": _int_or_none(conv(vol)),
            "high_24h": conv(high),
            "low_24h": conv(low),
            "price_change_24h": conv(price - p24) if price is not None and p24 is not None else None,
            "price_change_percentage_24h": (price / p24 - 1) * 100 if price is not None and p24 else None,
            "market_cap_change_24h": conv(cap - cap24) if cap is not None and cap24 is not None else None,
            "market_cap_change_percentage_24h": (cap / cap24 - 1) * 100
            if cap is not None and cap24
            else None,
            "circulating_supply": circ,
            "total_supply": total,
            "max_supply": max_supply,
            "ath": conv(ath),
            "ath_change_percentage": (price / ath - 1) * 100 if price is not None and ath else None,
            "ath_date": iso_ms(ath_ms) if ath is not None else None,
            "atl": conv(atl),
            "atl_change_percentage": (price / atl - 1) * 100 if price is not None and atl else None,
            "atl_date": iso_ms(atl_ms) if atl is not None else None,
            "roi": None,
            "last_updated": iso_ms(t),
        }
        if sparkline:
            grid = np.arange(t - 7 * DAY_MS + HOUR_MS, t + 1, HOUR_MS, dtype=np.int64)
            p, _, _ = self.ds.values_at(c, grid)
            row["sparkline_in_7d"] = {"price": [x * rate if x == x else None for x in p.tolist()]}
        for w in windows:
            past = self.ds.values_at(c, np.array([t - PRICE_CHANGE_WINDOWS[w]], dtype=np.int64))[0][0]
            pct = (price / past - 1) * 100 if price is not None and past == past and past else None
            row[f"price_change_percentage_{w}_in_currency"] = pct
        return row

    # ------------------------------------------------------------------ /global
    def global_data(self, now_ms: int) -> dict[str, Any]:
        active = self._active(now_ms)
        currents = {c: self._current(c, now_ms) for c in active}
        cap = sum(cur["cap"] or 0.0 for cur in currents.values())
        cap24 = sum(cur["cap_24h"] or 0.0 for cur in currents.values())
        vol = sum(cur["vol"] or 0.0 for cur in currents.values())
        top = sorted(active, key=lambda c: (-(currents[c]["cap"] or 0.0), self.ds.coins[c].id))[:10]
        return {
            "data": {
                "active_cryptocurrencies": len(active),
                "upcoming_icos": 0,
                "ongoing_icos": 0,
                "ended_icos": 0,
                "markets": 2,
                "total_market_cap": {k: cap * rate for k, rate in VS_CURRENCIES.items()},
                "total_volume": {k: vol * rate for k, rate in VS_CURRENCIES.items()},
                "market_cap_percentage": {
                    self.ds.coins[c].symbol: (currents[c]["cap"] or 0.0) / cap * 100 if cap else 0.0
                    for c in top
                },
                "market_cap_change_percentage_24h_usd": (cap / cap24 - 1) * 100 if cap24 else 0.0,
                "volume_change_percentage_24h_usd": 0.0,
                "updated_at": now_ms // 1000,
            }
        }

    # ------------------------------------------------------------------ /coins/categories
    def categories(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        order = params.get("order") or "market_cap_desc"
        if order not in CATEGORY_ORDERS:
            raise r.flat(400, "invalid order")
        active = self._active(now_ms)
        currents = {c: self._current(c, now_ms) for c in active}
        rows = []
        for cid, name in CATEGORY_NAMES.items():
            members = [c for c in active if cid in self.ds.coins[c].categories]
            caps = [(currents[c]["cap"] or 0.0, self.ds.coins[c].id, c) for c in members]
            caps.sort(key=lambda x: (-x[0], x[1]))
            cap = sum(x[0] for x in caps)
            cap24 = sum(currents[c]["cap_24h"] or 0.0 for c in members)
            vol = sum(currents[c]["vol"] or 0.0 for c in members)
            rows.append(
                {
                    "id": cid,
                    "name": name,
                    "market_cap": cap if members else None,
                    "market_cap_change_24h": (cap / cap24 - 1) * 100 if cap24 else None,
                    "content": "",
                    "top_3_coins_id": [x[1] for x in caps[:3]],
                    "top_3_coins": [self._image(x[2], "small") for x in caps[:3]],
                    "volume_24h": vol if members else None,
                    "updated_at": iso_ms(now_ms),
                }
            )
        key, _, direction = order.rpartition("_")

        def sort_key(row: dict[str, Any]) -> Any:
            if key == "name":
                return row["name"]
            v = row["market_cap"] if key == "market_cap" else row["market_cap_change_24h"]
            return v if v is not None else -math.inf

        rows.sort(key=sort_key, reverse=direction == "desc")
        return rows

    # ------------------------------------------------------------------ /coins/{id}
    def coin_detail(self, c: int, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        ds, coin = self.ds, self.ds.coins[c]
        localization = _bool(params, "localization", True)
        langs = (
            (
                "en",
                "de",
                "es",
                "fr",
                "it",
                "pl",
                "ro",
                "hu",
                "nl",
                "pt",
                "sv",
                "vi",
                "tr",
                "ru",
                "ja",
                "zh",
                "zh-tw",
                "ko",
                "ar",
                "th",
                "id",
                "cs",
                "da",
                "el",
                "hi",
                "no",
                "sk",
                "uk",
                "he",
                "fi",
                "bg",
                "hr",
                "lt",
                "sl",
            )
            if localization
            else ("en",)
        )
        text = f"{coin.name} is a simulated asset served by the Kallos fake CoinGecko server.\r\n"
        inactive = ds.is_inactive(c, now_ms)
        cur = self._current(c, now_ms)
        categories = [category_name(cid) for cid in coin.categories]
        body: dict[str, Any] = {
            "id": coin.id,
            "symbol": coin.symbol,
            "name": coin.name,
            "web_slug": coin.id,
            "asset_platform_id": None
            if "" in coin.platforms or not coin.platforms
            else next(iter(coin.platforms)),
            "platforms": dict(coin.platforms) or {"": ""},
            "detail_platforms": {
                k: {"decimal_place": None if k == "" else 18, "contract_address": v}
                for k, v in (coin.platforms or {"": ""}).items()
            },
            "block_time_in_minutes": coin.block_time_in_minutes,
            "hashing_algorithm": coin.hashing_algorithm,
            "categories": categories,
            "categories_details": [{"id": cid, "name": category_name(cid)} for cid in coin.categories],
            "preview_listing": False,
            "public_notice": "This coin is no longer actively traded." if inactive else None,
            "additional_notices": [],
        }
        if localization:
            body["localization"] = {lang: coin.name for lang in langs}
        body["description"] = {lang: text for lang in langs}
        body["links"] = {
            "homepage": [f"https://{coin.id}.example.org", "", ""],
            "whitepaper": "",
            "blockchain_site": [f"https://explorer.example.org/{coin.id}", "", "", "", ""],
            "official_forum_url": ["", "", ""],
            "chat_url": ["", "", ""],
            "announcement_url": ["", ""],
            "snapshot_url": None,
            "twitter_screen_name": coin.id.replace("-", ""),
            "facebook_username": "",
            "bitcointalk_thread_identifier": None,
            "telegram_channel_identifier": "",
            "subreddit_url": None,
            "repos_url": {"github": [f"https://github.com/example/{coin.id}"], "bitbucket": []},
        }
        body["image"] = {s: self._image(c, s) for s in ("thumb", "small", "large")}
        body.update(
            {
                "country_origin": "",
                "genesis_date": coin.genesis_date,
                "sentiment_votes_up_percentage": None,
                "sentiment_votes_down_percentage": None,
                "watchlist_portfolio_users": 1000 + 37 * coin.image_id,
                "market_cap_rank": None,
            }
        )
        active = self._active(now_ms)
        currents = {i: self._current(i, now_ms) for i in active}
        rank = self._ranks(now_ms, currents).get(c)
        body["market_cap_rank"] = rank
        if _bool(params, "market_data", True):
            body["market_data"] = self._detail_market_data(
                c, cur, rank, now_ms, _bool(params, "sparkline", False)
            )
        if _bool(params, "community_data", True):
            body["community_data"] = {
                "facebook_likes": None,
                "twitter_followers": None,
                "reddit_average_posts_48h": 0.0,
                "reddit_average_comments_48h": 0.0,
                "reddit_subscribers": 0,
                "reddit_accounts_active_48h": 0,
                "telegram_channel_user_count": None,
            }
        if _bool(params, "developer_data", True):
            body["developer_data"] = {
                "forks": 10 * coin.image_id,
                "stars": 50 * coin.image_id,
                "subscribers": 5 * coin.image_id,
                "total_issues": 20,
                "closed_issues": 18,
                "pull_requests_merged": 40,
                "pull_request_contributors": 7,
                "code_additions_deletions_4_weeks": {"additions": 120, "deletions": -80},
                "commit_count_4_weeks": 12,
                "last_4_weeks_commit_activity_series": [],
            }
        body["status_updates"] = []
        # The SDK's CoinGetIDResponse requires it (docs/decisions.md#D87); CoinGecko sets it where it
        # publishes a supply breakdown, which the fake ties to a capped supply.
        body["has_supply_breakdown"] = coin.max_supply is not None
        body["last_updated"] = iso_ms(int(cur["t"]))
        if _bool(params, "tickers", True):
            body["tickers"] = self._tickers(c, cur)
        return body

    def _detail_market_data(
        self, c: int, cur: dict[str, Any], rank: int | None, now_ms: int, sparkline: bool
    ) -> dict[str, Any]:
        price, cap, vol = cur["price"], cur["cap"], cur["vol"]
        t = int(cur["t"])
        high, low = self._hl(c, t - DAY_MS, t)
        ath, ath_ms, atl, atl_ms = self._extremes(c, now_ms)
        circ, total, max_supply = self._supply(c, cur)

        def per(x: float | None) -> dict[str, float | None]:
            return {k: (None if x is None else x * rate) for k, rate in VS_CURRENCIES.items()}

        def pct_vs(a: float | None, b: float | None) -> float | None:
            return (a / b - 1) * 100 if a is not None and b else None

        changes: dict[str, float | None] = {}
        for w in DETAIL_WINDOWS:
            span = PRICE_CHANGE_WINDOWS.get(w, 60 * DAY_MS)
            past = _num(self.ds.values_at(c, np.array([t - span], dtype=np.int64))[0][0])
            changes[w] = pct_vs(price, past)
        hour_ago = _num(self.ds.values_at(c, np.array([t - HOUR_MS], dtype=np.int64))[0][0])
        data: dict[str, Any] = {
            "current_price": per(price),
            "total_value_locked": None,
            "mcap_to_tvl_ratio": None,
            "fdv_to_tvl_ratio": None,
            "roi": None,
            "ath": per(ath),
            "ath_change_percentage": {k: pct_vs(price, ath) for k in VS_CURRENCIES},
            "ath_date": {k: iso_ms(ath_ms) if ath is not None else None for k in VS_CURRENCIES},
            "atl": per(atl),
            "atl_change_percentage": {k: pct_vs(price, atl) for k in VS_CURRENCIES},
            "atl_date": {k: iso_ms(atl_ms) if atl is not None else None for k in VS_CURRENCIES},
            "market_cap": per(cap),
            "market_cap_rank": rank,
            "fully_diluted_valuation": per(
                price * (max_supply or total) if price and (max_supply or total) else None
            ),
            "market_cap_fdv_ratio": (cap / (price * max_supply)) if cap and price and max_supply else None,
            "total_volume": per(vol),
            "high_24h": per(high),
            "low_24h": per(low),
            "price_change_24h": (price - cur["price_24h"])
            if price is not None and cur["price_24h"]
            else None,
        }
        for w in DETAIL_WINDOWS:
            data[f"price_change_percentage_{w}"] = changes[w]
        cap24 = cur["cap_24h"]
        data["market_cap_change_24h"] = (cap - cap24) if cap is not None and cap24 is not None else None
        data["market_cap_change_percentage_24h"] = pct_vs(cap, cap24)
        data["price_change_24h_in_currency"] = per(data["price_change_24h"])
        data["price_change_percentage_1h_in_currency"] = {k: pct_vs(price, hour_ago) for k in VS_CURRENCIES}
        for w in DETAIL_WINDOWS:
            data[f"price_change_percentage_{w}_in_currency"] = {k: changes[w] for k in VS_CURRENCIES}
        data["market_cap_change_24h_in_currency"] = per(data["market_cap_change_24h"])
        data["market_cap_change_percentage_24h_in_currency"] = {k: pct_vs(cap, cap24) for k in VS_CURRENCIES}
        data["total_supply"] = total
        data["max_supply"] = max_supply
        data["max_supply_infinite"] = max_supply is None
        data["circulating_supply"] = circ
        if sparkline:
            grid = np.arange(t - 7 * DAY_MS + HOUR_MS, t + 1, HOUR_MS, dtype=np.int64)
            p = self.ds.values_at(c, grid)[0]
            data["sparkline_7d"] = {"price": [x if x == x else None for x in p.tolist()]}
        data["last_updated"] = iso_ms(t)
        return data

    def _tickers(self, c: int, cur: dict[str, Any]) -> list[dict[str, Any]]:
        coin = self.ds.coins[c]
        price, vol = cur["price"], cur["vol"]
        if price is None:
            return []
        stamp = iso_ms(int(cur["t"]))
        out = []
        for i, (market, target) in enumerate((("Simbase", "USDT"), ("Fakex", "USD"))):
            last = price * (1 + 0.001 * (i - 0.5))
            out.append(
                {
                    "base": coin.symbol.upper(),
                    "target": target,
                    "market": {"name": market, "identifier": market.lower(), "has_trading_incentive": False},
                    "last": last,
                    "volume": (vol or 0.0) / price * 0.1,
                    "converted_last": {"btc": None, "eth": None, "usd": last},
                    "converted_volume": {"btc": None, "eth": None, "usd": (vol or 0.0) * 0.1},
                    "trust_score": "green",
                    "bid_ask_spread_percentage": 0.01,
                    "timestamp": stamp,
                    "last_traded_at": stamp,
                    "last_fetch_at": stamp,
                    "is_anomaly": False,
                    "is_stale": False,
                    "trade_url": None,
                    "token_info_url": None,
                    "coin_id": coin.id,
                    "target_coin_id": "tether" if target == "USDT" else None,
                }
            )
        return out

    # ------------------------------------------------------------------ charts
    def _chart(self, c: int, from_ms: int, to_ms: int, granularity: str, now_ms: int, rate: float) -> RawJSON:
        ds = self.ds
        upto = min(to_ms, now_ms)
        if granularity == "daily":
            k0 = max(-(-from_ms // DAY_MS) - ds.start_day, int(ds.first[c]))
            k1 = min(upto // DAY_MS - ds.start_day, int(ds.last[c]))
            k = np.arange(k0, k1 + 1) if k1 >= k0 else np.arange(0)
            k = k[ds.present[c, k]]
            ts = ds.day_ms(k)
            if ds.ts_offset_ms is not None:
                ts = ts + ds.ts_offset_ms[c, k]
            p, m, v = ds.price[c, k], ds.market_cap[c, k], ds.volume[c, k]
        else:
            step = HOUR_MS if granularity == "hourly" else MIN5_MS
            jitter_max = 540_000 if step == HOUR_MS else 50_000
            lo = max(from_ms, ds.first_ms(c))
            grid = np.arange(-(-lo // step) * step, upto + 1, step, dtype=np.int64)
            day = grid // DAY_MS - ds.start_day
            keep = (day <= ds.last[c]) & ds.present[c, np.clip(day, 0, ds.n_days - 1)]
            grid = grid[keep]
            p, m, v = ds.values_at(c, grid)
            # Real intraday points are not aligned (docs §3.3): the value is the grid's, the stamp jittered.
            h = (grid // step * 2654435761 + (c + 1) * 97531) % jitter_max
            ts = grid + np.where(grid % DAY_MS == 0, h % 1000, h)
            ok = ~np.isnan(p) & (ts <= now_ms)
            ts, p, m, v = ts[ok], p[ok], m[ok], v[ok]
        if to_ms >= now_ms and ds.first_ms(c) <= now_ms:
            pn, mn, vn = ds.values_at(c, np.array([now_ms], dtype=np.int64))
            if not np.isnan(pn[0]) and (ts.size == 0 or ts[-1] < now_ms):
                ts = np.append(ts, now_ms)
                p, m, v = np.append(p, pn), np.append(m, mn), np.append(v, vn)
        if rate != 1.0:
            p, m, v = p * rate, m * rate, v * rate
        ts = np.asarray(ts, dtype=np.int64)
        return RawJSON(
            f'{{"prices":{_pairs_json(ts, p)},"market_caps":{_pairs_json(ts, m)},'
            f'"total_volumes":{_pairs_json(ts, v)}}}'
        )

    def _interval(self, params: dict[str, str]) -> str:
        interval = (params.get("interval") or "").strip().lower()
        if interval in ("", "daily"):
            return interval
        if interval in ("hourly", "5m", "5-minutely", "minutely"):
            if not self.paid:
                raise r.pro_only()
            return "hourly" if interval == "hourly" else "5m"
        raise r.flat(400, "invalid interval")

    def market_chart(self, c: int, params: dict[str, str], now_ms: int, now: dt.datetime) -> Any:
        rate = self._vs(params)
        days_raw = (params.get("days") or "").strip().lower()
        if not days_raw:
            raise r.missing_parameter("days")
        if days_raw == "max":
            if not self.paid:
                raise r.history_limit(now)
            days = math.inf
            from_ms = self.ds.first_ms(c)
        else:
            try:
                days = float(days_raw)
            except ValueError:
                raise r.flat(400, "invalid days") from None
            if days <= 0 or math.isnan(days):
                raise r.flat(400, "invalid days")
            if days > 365 and not self.paid:
                raise r.history_limit(now)
            from_ms = now_ms - int(days * DAY_MS)
        interval = self._interval(params)
        if interval == "hourly" and days > 100:
            raise r.flat(400, "interval=hourly is available for up to 100 days")
        if interval == "5m" and days > 10:
            raise r.flat(400, "interval=5m is available for up to 10 days")
        if interval:
            granularity = interval
        elif days <= 1:
            granularity = "5m"
        elif days <= 90:
            granularity = "hourly"
        else:
            granularity = "daily"
        return self._chart(c, from_ms, now_ms, granularity, now_ms, rate)

    def market_chart_range(self, c: int, params: dict[str, str], now_ms: int, now: dt.datetime) -> Any:
        rate = self._vs(params)
        for name in ("from", "to"):
            if not params.get(name):
                raise r.missing_parameter(name)
        from_ms = _parse_time(params["from"], "from")
        to_ms = _parse_time(params["to"], "to")
        self._check_window(from_ms, now_ms, now)
        interval = self._interval(params)
        span = to_ms - from_ms
        if interval == "hourly" and span > 100 * DAY_MS:
            raise r.flat(400, "interval=hourly is available for up to 100 days per request")
        if interval == "5m" and span > 10 * DAY_MS:
            raise r.flat(400, "interval=5m is available for up to 10 days per request")
        if span < 0:
            return {"prices": [], "market_caps": [], "total_volumes": []}
        if interval:
            granularity = interval
        elif span <= DAY_MS:
            granularity = "5m" if to_ms >= now_ms - MIN5_MS else "hourly"
        elif span <= 90 * DAY_MS:
            granularity = "hourly"
        else:
            granularity = "daily"
        return self._chart(c, from_ms, to_ms, granularity, now_ms, rate)

    # ------------------------------------------------------------------ ohlc
    def _candles(
        self, c: int, size: int, from_ms: int, to_ms: int, now_ms: int, rate: float, daily_only_present: bool
    ) -> RawJSON:
        """Candles of `size` ms stamped with their close time (vectorized: ``max`` has ~1,000 of them)."""
        ds = self.ds
        end_limit = min(now_ms, ds.end_ms(c))
        lo = max(from_ms, ds.first_ms(c))
        starts = np.arange(-(-lo // size) * size, min(end_limit, to_ms), size, dtype=np.int64)
        closes = starts + size
        # A range request keeps candles that close by `to`, plus the running candle when `to` reaches now.
        keep = (closes <= to_ms) | (to_ms >= now_ms)
        starts, closes = starts[keep], closes[keep]
        if starts.size == 0:
            return RawJSON("[]")
        ends = np.minimum(closes, end_limit)
        if size % DAY_MS == 0:
            o, h, low, cl = self._day_candles(c, size, starts, ends, closes, daily_only_present)
        else:
            hour_grid = np.arange(
                -(-int(starts[0]) // HOUR_MS) * HOUR_MS, int(ends[-1]) + 1, HOUR_MS, dtype=np.int64
            )
            times = np.unique(np.concatenate([hour_grid, starts, ends]))
            p = ds.values_at(c, times)[0]
            i0 = np.searchsorted(times, starts)
            i1 = np.searchsorted(times, ends)
            # Adjacent candles: segment j is [i0_j, i0_j+1) plus its end point i1_j (= i0_j+1).
            h = np.fmax(np.fmax.reduceat(p, i0), p[i1])
            low = np.fmin(np.fmin.reduceat(p, i0), p[i1])
            o, cl = p[i0], p[i1]
        ok = ~(np.isnan(o) | np.isnan(cl))
        rows = [
            f"[{t},{a!r},{b!r},{d!r},{e!r}]"
            for t, a, b, d, e in zip(
                closes[ok].tolist(),
                (o[ok] * rate).tolist(),
                (h[ok] * rate).tolist(),
                (low[ok] * rate).tolist(),
                (cl[ok] * rate).tolist(),
                strict=True,
            )
        ]
        return RawJSON("[" + ",".join(rows) + "]")

    def _day_candles(
        self,
        c: int,
        size: int,
        starts: np.ndarray,
        ends: np.ndarray,
        closes: np.ndarray,
        daily_only_present: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Whole-day candles from the daily candles; a running (or cut) last candle from the path."""
        ds = self.ds
        nd = size // DAY_MS
        o_arr, h_arr, l_arr, c_arr = (ds.ohlc[k][c] for k in ("open", "high", "low", "close"))
        n = starts.size
        o, h, low, cl = (np.full(n, np.nan) for _ in range(4))
        complete = ends == closes
        if complete.any():
            k_lo = starts[complete] // DAY_MS - ds.start_day + 1
            k_hi = k_lo + nd - 1
            stop = int(k_hi[-1]) + 1
            h[complete] = np.fmax.reduceat(h_arr[:stop], k_lo) if nd > 1 else h_arr[k_lo]
            low[complete] = np.fmin.reduceat(l_arr[:stop], k_lo) if nd > 1 else l_arr[k_lo]
            o[complete] = o_arr[k_lo]
            cl[complete] = np.where(np.isnan(c_arr[k_hi]), ds.price[c, k_hi], c_arr[k_hi])
            if daily_only_present and nd == 1:
                idx = np.flatnonzero(complete)
                cl[idx[~ds.present[c, k_hi]]] = np.nan
        for j in np.flatnonzero(~complete):
            s, e = int(starts[j]), int(ends[j])
            k_lo = s // DAY_MS - ds.start_day + 1
            k_hi = e // DAY_MS - ds.start_day  # the last day whose candle closed by e
            highs, lows = [], []
            if k_hi >= k_lo:
                highs.append(np.nanmax(h_arr[k_lo : k_hi + 1]))
                lows.append(np.nanmin(l_arr[k_lo : k_hi + 1]))
                o[j] = o_arr[k_lo]
            else:
                o[j] = ds.values_at(c, np.array([s], dtype=np.int64))[0][0]
            if e % DAY_MS:
                grid = np.arange(e // DAY_MS * DAY_MS, e, HOUR_MS, dtype=np.int64)
                tail = ds.values_at(c, np.append(grid, e))[0]
                highs.append(np.nanmax(tail))
                lows.append(np.nanmin(tail))
                cl[j] = tail[-1]
            else:
                cl[j] = c_arr[k_hi] if not np.isnan(c_arr[k_hi]) else ds.price[c, k_hi]
            h[j], low[j] = np.nanmax(highs), np.nanmin(lows)
        return o, h, low, cl

    def ohlc(self, c: int, params: dict[str, str], now_ms: int, now: dt.datetime) -> Any:
        rate = self._vs(params)
        days = (params.get("days") or "").strip().lower()
        if not days:
            raise r.missing_parameter("days")
        if days not in OHLC_DAYS:
            raise r.flat(400, "invalid days: must be one of 1, 7, 14, 30, 90, 180, 365, max")
        if days == "max" and not self.paid:
            raise r.history_limit(now)
        interval = (params.get("interval") or "").strip().lower()
        if interval:
            if interval not in ("daily", "hourly"):
                raise r.flat(400, "invalid interval")
            if not self.paid:
                raise r.pro_only()
            allowed = OHLC_DAILY_DAYS if interval == "daily" else OHLC_HOURLY_DAYS
            if days not in allowed:
                raise r.flat(400, f"interval={interval} is not available for days={days}")
            size = DAY_MS if interval == "daily" else HOUR_MS
        else:
            n = 10**9 if days == "max" else int(days)
            size = 30 * 60_000 if n <= 2 else 4 * HOUR_MS if n <= 30 else 4 * DAY_MS
        from_ms = self.ds.first_ms(c) if days == "max" else now_ms - int(days) * DAY_MS
        return self._candles(c, size, from_ms, now_ms, now_ms, rate, daily_only_present=True)

    def ohlc_range(self, c: int, params: dict[str, str], now_ms: int, now: dt.datetime) -> Any:
        if not self.paid:
            raise r.pro_only()
        rate = self._vs(params)
        for name in ("from", "to", "interval"):
            if not params.get(name):
                raise r.missing_parameter(name)
        from_ms = _parse_time(params["from"], "from")
        to_ms = _parse_time(params["to"], "to")
        interval = params["interval"].strip().lower()
        if interval not in ("daily", "hourly"):
            raise r.flat(400, "invalid interval")
        limit = 180 if interval == "daily" else 31
        if to_ms - from_ms > limit * DAY_MS:
            raise r.flat(400, f"interval={interval} allows at most {limit} days per request")
        size = DAY_MS if interval == "daily" else HOUR_MS
        return self._candles(c, size, from_ms, to_ms, now_ms, rate, daily_only_present=True)

    # ------------------------------------------------------------------ /coins/{id}/history
    def history(self, c: int, params: dict[str, str], now_ms: int, now: dt.datetime) -> Any:
        raw = (params.get("date") or "").strip()
        if not raw:
            raise r.missing_parameter("date")
        try:
            if len(raw) == 10 and raw[2] == "-":
                day = dt.datetime.strptime(raw, "%d-%m-%Y").date()
            else:
                day = dt.date.fromisoformat(raw[:10])
        except ValueError:
            raise r.flat(400, "invalid date") from None
        t = datetime_to_ms(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
        self._check_window(t, now_ms, now)
        coin, ds = self.ds.coins[c], self.ds
        body: dict[str, Any] = {"id": coin.id, "symbol": coin.symbol, "name": coin.name}
        if _bool(params, "localization", True):
            body["localization"] = {"en": coin.name, "de": coin.name}
        body["image"] = {"thumb": self._image(c, "thumb"), "small": self._image(c, "small")}
        k = t // DAY_MS - ds.start_day
        if t <= now_ms and 0 <= k < ds.n_days and ds.first[c] <= k <= ds.last[c] and ds.present[c, k]:
            body["market_data"] = {
                "current_price": {v: ds.price[c, k] * rate for v, rate in VS_CURRENCIES.items()},
                "market_cap": {
                    v: (_num(ds.market_cap[c, k]) or 0.0) * rate for v, rate in VS_CURRENCIES.items()
                },
                "total_volume": {
                    v: (_num(ds.volume[c, k]) or 0.0) * rate for v, rate in VS_CURRENCIES.items()
                },
            }
        listed = 0 <= k < ds.n_days and ds.first[c] <= k and t <= now_ms
        grow = (k - ds.first[c] + 1) / max(1, ds.n_days - ds.first[c]) if listed else 0.0  # repos grow over time
        body["community_data"] = {
            "facebook_likes": None,
            "twitter_followers": None,
            "reddit_average_posts_48h": 0.0,
            "reddit_average_comments_48h": 0.0,
            "reddit_subscribers": None,
            "reddit_accounts_active_48h": None,
        }
        body["developer_data"] = {
            "forks": round(10 * coin.image_id * grow) if listed else None,
            "stars": round(50 * coin.image_id * grow) if listed else None,
            "subscribers": round(5 * coin.image_id * grow) if listed else None,
            "total_issues": round(20 * grow) if listed else None,
            "closed_issues": round(18 * grow) if listed else None,
            "pull_requests_merged": round(40 * grow) if listed else None,
            "pull_request_contributors": 7 if listed else None,
            "code_additions_deletions_4_weeks": {
                "additions": 120 if listed else None,
                "deletions": -80 if listed else None,
            },
            "commit_count_4_weeks": 12 if listed else None,
        }
        body["public_interest_stats"] = {"alexa_rank": None, "bing_matches": None}
        return body


__all__ = ["OHLC_DAYS", "VS_CURRENCIES", "Api", "RawJSON"]
