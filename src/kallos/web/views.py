"""What the templates call: number formats and the charts each page draws from its data."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from markupsafe import Markup

from kallos.pipeline.telemetry import human_bytes, status_text
from kallos.web.charts import Series, chart, fmt_number, fmt_percent

__all__ = ["human_bytes", "status_text"]


def _missing(v: Any) -> bool:
    return v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def num(v: Any, digits: int = 2) -> str:
    if _missing(v):
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:,.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"
    return str(v)


def pct(v: Any, digits: int = 1) -> str:
    return "–" if _missing(v) else f"{float(v) * 100:.{digits}f}%"


def when(v: Any) -> str:
    if _missing(v) or v == "":
        return "–"
    ts = pd.Timestamp(v)
    if pd.isna(ts):
        return "–"
    return ts.strftime("%Y-%m-%d %H:%M") if (ts.hour or ts.minute or ts.second) else ts.strftime("%Y-%m-%d")


def secs(v: Any) -> str:
    if _missing(v):
        return "–"
    v = float(v)
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.1f} h"


def statuses(by_status: Mapping[str, Any] | None) -> str:
    return status_text(by_status)


def fmt(v: Any) -> str:
    return fmt_number(float(v)) if isinstance(v, (int, float)) and not _missing(v) else "–"


# ---- charts per page ---------------------------------------------------------------------------------------
def step_durations(durations: Mapping[str, Sequence[Mapping[str, Any]]]) -> Markup:
    series = [Series(step, [p["at"] for p in pts], [p["seconds"] for p in pts]) for step, pts in durations.items()]
    return Markup(chart(series, title="step durations (seconds) per run", chart_id="durations-chart",
                        y_floor_zero=True))  # fmt: skip


def quality_over_time(over_time: Mapping[str, Sequence[Mapping[str, Any]]]) -> Markup:
    series = [Series(r, [p["month"] for p in pts], [p["events"] for p in pts], kind="line")
              for r, pts in over_time.items()]  # fmt: skip
    return Markup(chart(series, title="events per month by reason", chart_id="quality-chart", y_floor_zero=True))


def price_chart(d: Mapping[str, Any]) -> Markup:
    bars = d["bars"]
    x = [b["date"] for b in bars]
    overlay = [i for i in d["indicators"] if i.startswith(("sma_", "ema_", "bb_", "kc_"))]
    series = [Series("close", x, [b.get("close") for b in bars])]
    series += [Series(i, x, [b.get(i) for b in bars]) for i in overlay]
    return Markup(chart(series, title=f"{d['symbol'].upper()} price ({d['timeframe']})", chart_id="price-chart",
                        height=320))  # fmt: skip


def volume_chart(d: Mapping[str, Any]) -> Markup:
    bars = d["bars"]
    series = [Series("volume", [b["date"] for b in bars], [b.get("volume") for b in bars], kind="bar")]
    return Markup(chart(series, title="volume", chart_id="volume-chart", height=160))


def oscillator_chart(d: Mapping[str, Any]) -> Markup:
    others = [i for i in d["indicators"] if not i.startswith(("sma_", "ema_", "bb_", "kc_"))]
    if not others:
        return Markup("")
    x = [b["date"] for b in d["bars"]]
    series = [Series(i, x, [b.get(i) for b in d["bars"]]) for i in others]
    return Markup(chart(series, title=", ".join(others), chart_id="indicator-chart", height=200))


def index_chart(d: Mapping[str, Any]) -> Markup:
    levels = d["levels"]
    x = [r["date"] for r in levels]
    series = [Series("index", x, [r["index_value"] for r in levels])]
    if any(not _missing(r.get("net_index_value")) for r in levels):
        series.append(Series("net of costs", x, [r.get("net_index_value") for r in levels]))
    for name, pts in (d.get("benchmarks") or {}).items():
        series.append(Series(name, [p["date"] for p in pts], [p["value"] for p in pts]))
    return Markup(chart(series, title="index level", chart_id="index-chart", height=300))


def drawdown_chart(d: Mapping[str, Any]) -> Markup:
    levels = d["levels"]
    series = [Series("drawdown", [r["date"] for r in levels], [r["drawdown"] for r in levels])]
    return Markup(chart(series, title="drawdown", chart_id="drawdown-chart", height=180, y_format=fmt_percent))


def signal_history_chart(d: Mapping[str, Any]) -> Markup:
    h = d["history"]
    x = [r["week"] for r in h]
    series = [Series("buy", x, [r["buy"] for r in h]), Series("sell", x, [r["sell"] for r in h]),
              Series("rule signals", x, [r["rules"] for r in h])]  # fmt: skip
    return Markup(chart(series, title="signals per week", chart_id="signals-chart", y_floor_zero=True))
