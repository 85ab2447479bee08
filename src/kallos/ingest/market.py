"""One coin's daily history: which days to ask for, the calls the plan's rules require, validated bars.

`market_chart/range` gives close (price at 00:00 UTC), market cap and 24 h volume; daily points need a span over
90 days, so shorter requests are widened (one call either way) and the extra days are dropped. Demo and public
plans only reach 365 days back: older starts are clamped (with a warning) rather than sent and refused with
10012.
Candles come from `ohlc/range` (paid: daily, at most 180 days a call) or, when asked on other plans, from
`/ohlc`
4-hour candles of the last 30 days combined into days; each bar says where its open/high/low came from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import pandas as pd

from kallos.clock import last_final_day
from kallos.coingecko import plans
from kallos.coingecko.arrays import CandleArrays
from kallos.errors import ClockAheadError
from kallos.ingest import frames
from kallos.ingest.state import (
    CHART,
    OHLC,
    CoinWrite,
    Watermark,
    coins_with_holes,
    coverage_counts,
    holes,
    previous_bar,
    read_watermarks,
    stablecoins,
    stored_dates,
)
from kallos.ingest.validation import QUARANTINED, validate_market_rows
from kallos.store import Store

CHART_SOURCE = "market_chart/range"
OHLC_DATA_START = dt.date(2018, 2, 9)
"""`ohlc/range` has no candles before this day."""
DAILY_SPAN = dt.timedelta(days=91)
"""A `market_chart/range` span longer than 90 days is answered with daily points."""


@dataclass
class Window:
    """The days one coin needs and how to fetch them."""

    coin_id: str
    start: dt.date
    """First day wanted (inclusive)."""
    end: dt.date
    """Last final day wanted (inclusive)."""
    clamped_from: dt.date | None = None
    """Set when the plan's history limit moved `start` later."""
    reasons: list[str] = field(default_factory=list)


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def plan_window(
    coin_id: str,
    wm: Watermark | None,
    *,
    plan: str,
    now: dt.datetime,
    last_final: dt.date,
    since: dt.date | None = None,
    hole_days: list[dt.date] | None = None,
    last_stored: dt.date | None = None,
) -> Window | None:
    """The day range to fetch for one coin, or None when its watermark says it is complete.

    A watermark past `last_final` cannot have been proven by the API (a run whose clock was ahead moved it):
    it is not trusted, and the coin resumes after its last stored day (docs/decisions.md#D55)."""
    default_start = since or plans.PRO_DATA_START.date()
    reasons: list[str] = []
    if wm is not None and wm.last_date is not None and wm.last_date > last_final:
        wm = Watermark(wm.coin_id, wm.series, wm.first_date, last_stored, set(wm.missing), dict(wm.state))
        reasons.append("watermark_ahead")
    if wm is None or wm.last_date is None:
        start = default_start
        reasons.append("new")
    else:
        start = wm.last_date + dt.timedelta(days=1)
        if start <= last_final:
            reasons.append("new_days")
        checked_from = wm.state.get("checked_from")
        checked = dt.date.fromisoformat(checked_from) if checked_from else wm.first_date
        if since is not None and checked is not None and since < checked:
            start = since
            reasons.append("older_history")
        if hole_days:
            start = min(start, hole_days[0])
            reasons.append("holes")
    if start > last_final:
        return None
    window = Window(coin_id, start, last_final, reasons=reasons)
    floor = plans.earliest_allowed(plan, now)
    if floor is not None:
        allowed = (floor + plans.DAY).date()
        if start < allowed:
            window.clamped_from = start
            window.start = allowed
            if window.start > last_final:
                return None
    return window


def find_holes(store: Store, coin_id: str, wm: Watermark | None) -> list[dt.date]:
    return holes(stored_dates(store, coin_id), wm.missing if wm else set())


def chart_calls(window: Window) -> int:
    return 1


def ohlc_calls(window: Window, plan: str) -> int:
    if not plans.get_plan(plan).paid:
        return 1
    start = max(window.start, OHLC_DATA_START)
    if start > window.end:
        return 0
    return plans.ohlc_range_calls(midnight(start) - plans.DAY, midnight(window.end))


async def fetch_history(
    store: Store,
    client: object,
    window: Window,
    *,
    plan: str,
    now: dt.datetime,
    candles: bool,
    stablecoin: bool,
    chart_wm: Watermark | None,
    ohlc_wm: Watermark | None,
) -> CoinWrite:
    """Fetch, validate and package one coin's window (no write: the runner writes atomically)."""
    coin = window.coin_id
    frm = midnight(window.start)
    if now - frm < DAILY_SPAN:
        frm = now - DAILY_SPAN
        floor = plans.earliest_allowed(plan, now)
        if floor is not None:
            frm = max(frm, floor + plans.DAY)
    chart = await client.market_chart_range_arrays(coin, frm, now)  # type: ignore[attr-defined]
    check_api_clock(client, now)
    window = proven_window(window, getattr(client, "api_now", None))
    raw = frames.chart_frame(chart)
    final, provisional = frames.split_final(raw, window.end)
    ts = pd.to_datetime(final["snapped_at"], utc=True, errors="coerce")
    final = final[ts.isna() | (ts >= pd.Timestamp(midnight(window.start)))].reset_index(drop=True)

    bars_in = final
    fetched_candles = False
    if candles:
        daily = await _fetch_candles(client, coin, window, final, plan)
        if daily is not None:
            keep = (daily["date"] >= pd.Timestamp(window.start)) & (daily["date"] <= pd.Timestamp(window.end))
            bars_in, _unmatched = frames.attach_candles(final, daily[keep])
            fetched_candles = True

    prev_date, prev_close = previous_bar(store, coin, window.start)
    good, events = validate_market_rows(
        bars_in,
        coin_id=coin,
        source=CHART_SOURCE,
        prev_close=prev_close,
        prev_date=prev_date,
        stablecoin=stablecoin,
        known_missing=chart_wm.missing if chart_wm else (),
    )
    bars = good.assign(close_source="chart")
    if not fetched_candles:
        bars = bars.drop(columns=[c for c in ("open", "high", "low", "ohlc_source") if c in bars.columns])

    watermarks = [chart_watermark(coin, chart_wm, window, good, events)]
    if fetched_candles:
        wm = ohlc_wm or Watermark(coin, OHLC)
        first = good.loc[good["open"].notna(), "date"].min() if "open" in good else None
        wm.first_date = min(filter(None, [wm.first_date, _day(first)]), default=None)
        wm.last_date = max(filter(None, [wm.last_date, window.end]))
        watermarks.append(wm)
    return CoinWrite(
        coin_id=coin,
        bars=bars,
        events=events,
        snapshots=frames.snapshots_from_chart(coin, provisional, "market_chart"),
        watermarks=watermarks,
    )


CLOCK_TOLERANCE = dt.timedelta(minutes=10)
"""How far a run's clock may be ahead of the API's before ingestion refuses to go on (docs/decisions.md#D55)."""


def check_api_clock(client: object, now: dt.datetime) -> None:
    """Refuse to ingest when this run's `now` is ahead of the API's own clock (read from its last answer).

    Days the API has not published yet would look missing, and watermarks would pass data never stored."""
    api_now = getattr(client, "api_now", None)
    if not isinstance(api_now, dt.datetime) or now - api_now <= CLOCK_TOLERANCE:
        return
    source = "X-Fake-Now" if getattr(client, "server_now", None) is not None else "Date"
    ahead = now - api_now
    hours = ahead.total_seconds() / 3600
    span = f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.1f} hours"
    raise ClockAheadError(
        f"this run's clock says {now:%Y-%m-%d %H:%M} UTC but the CoinGecko API's clock ({source} header) says "
        f"{api_now:%Y-%m-%d %H:%M} UTC, {span} ahead; days the API has not published yet would look missing, so "
        "nothing is stored. Fix the system clock (NTP), or KALLOS_NOW / --now",
        setting="KALLOS_NOW",
    )


def proven_window(window: Window, api_now: dt.datetime | None) -> Window:
    """The window cut at the API's own last final day: a watermark never moves past what the API has proven,
    stored or empty, even when this run's clock is a little ahead of it (docs/decisions.md#D55)."""
    if api_now is None:
        return window
    proven = last_final_day(api_now)
    if proven >= window.end:
        return window
    return replace(window, end=max(proven, window.start - dt.timedelta(days=1)))


def _day(v: object) -> dt.date | None:
    if v is None or pd.isna(v):  # type: ignore[arg-type]
        return None
    return pd.Timestamp(v).date()  # type: ignore[arg-type]


def chart_watermark(
    coin: str, old: Watermark | None, window: Window, good: pd.DataFrame, events: pd.DataFrame
) -> Watermark:
    """The cursor moves to the window's last day; missing and quarantined days are remembered."""
    wm = old or Watermark(coin, CHART)
    wm = Watermark(coin, CHART, wm.first_date, wm.last_date, set(wm.missing), dict(wm.state))
    dates = pd.DatetimeIndex(pd.to_datetime(good["date"]))  # thousands of days: kept as an index, not a set
    if len(dates):
        wm.first_date = min(filter(None, [wm.first_date, dates.min().date()]))
    wm.last_date = max(filter(None, [wm.last_date, window.end]))
    if not events.empty:
        gone = events[(events["reason"] == "missing_day") | (events["action"] == QUARANTINED)]
        wm.missing |= {d.date() for d in pd.to_datetime(gone["date"]) if d.year > 1970}
    if wm.missing:
        wm.missing -= set(dates.intersection(pd.DatetimeIndex(sorted(wm.missing))).date)
    checked = wm.state.get("checked_from")
    start = window.start.isoformat()
    wm.state["checked_from"] = min(checked, start) if checked else start
    if window.clamped_from is not None:
        wm.state["clamped_from"] = window.clamped_from.isoformat()
    return wm


async def _fetch_candles(
    client: object, coin: str, window: Window, final: pd.DataFrame, plan: str
) -> pd.DataFrame | None:
    """Daily candles for the window (None when nothing can be asked on this plan for it)."""
    if plans.get_plan(plan).paid:
        first_data = pd.to_datetime(final["snapped_at"], utc=True, errors="coerce").min()
        start = max(window.start, OHLC_DATA_START)
        if pd.notna(first_data):
            start = max(start, first_data.date())
        if start > window.end:
            return None
        got = [
            await client.ohlc_range_arrays(coin, a, b, "daily")  # type: ignore[attr-defined]
            for a, b in plans.chunk_range(
                midnight(start) - plans.DAY, midnight(window.end), plans.OHLC_RANGE_MAX_SPAN["daily"]
            )
        ]
        return frames.daily_candles(frames.candles_frame(CandleArrays.concat(got)))
    # Free plans: only the last 30 days come as 4-hour candles (combined into days); older bars stay
    # close-only.
    candles = await client.ohlc_arrays(coin, 30)  # type: ignore[attr-defined]
    return frames.daily_candles(frames.candles_frame(candles))


def expected_calls(window: Window, plan: str, candles: bool) -> dict[str, int]:
    out = {"/coins/{id}/market_chart/range": chart_calls(window)}
    if candles:
        key = "/coins/{id}/ohlc/range" if plans.get_plan(plan).paid else "/coins/{id}/ohlc"
        out[key] = ohlc_calls(window, plan)
    return out


@dataclass
class HistoryFetcher:
    """What all coins fetched in one run share: watermarks, holes and stablecoins read once; plan; clock."""

    store: Store
    client: object
    plan: str
    now: dt.datetime
    candles: bool
    chart_wms: dict[str, Watermark]
    ohlc_wms: dict[str, Watermark]
    with_holes: set[str]
    stable: set[str]
    last_stored: dict[str, dt.date] = field(default_factory=dict)

    @classmethod
    def for_run(
        cls,
        store: Store,
        client: object,
        *,
        plan: str,
        now: dt.datetime,
        candles: bool,
        coins: list[str] | None = None,
    ) -> HistoryFetcher:
        chart_wms = read_watermarks(store, CHART, coins)
        spans = coverage_counts(store)
        return cls(
            store,
            client,
            plan,
            now,
            candles,
            chart_wms,
            read_watermarks(store, OHLC, coins),
            coins_with_holes(store, chart_wms, spans),
            stablecoins(store),
            {r.coin_id: pd.Timestamp(r.last_stored).date() for r in spans.itertuples(index=False)},
        )

    def window(self, coin: str, *, last_final: dt.date, since: dt.date | None = None) -> Window | None:
        wm = self.chart_wms.get(coin)
        hole_days = find_holes(self.store, coin, wm) if coin in self.with_holes else []
        return plan_window(
            coin,
            wm,
            plan=self.plan,
            now=self.now,
            last_final=last_final,
            since=since,
            hole_days=hole_days,
            last_stored=self.last_stored.get(coin),
        )

    async def fetch(self, window: Window) -> CoinWrite:
        coin = window.coin_id
        return await fetch_history(
            self.store,
            self.client,
            window,
            plan=self.plan,
            now=self.now,
            candles=self.candles,
            stablecoin=coin in self.stable,
            chart_wm=self.chart_wms.get(coin),
            ohlc_wm=self.ohlc_wms.get(coin),
        )
