"""Charts drawn on the server as inline SVG: no chart library, no script, nothing fetched (docs/decisions.md#D93).

Pure functions: series in, SVG text out. Each chart is a `<figure class="chart">` carrying the number of points
it drew (`data-points`), which the browser tests read to check that a chart shows data; gaps (missing values)
break a line rather than being bridged.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

PALETTE = ("#1f4e79", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#17a2b8", "#7f8c8d", "#e84393")
WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 26


@dataclass(frozen=True)
class Series:
    label: str
    x: Sequence[object]
    """Dates, timestamps or ISO strings."""
    y: Sequence[float | None]
    kind: str = "line"
    """`line` or `bar`."""


def _xnum(value: object) -> float:
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.value / 1e9


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def decimate(
    pairs: list[tuple[float, float | None]], x0: float, x1: float, columns: int
) -> list[tuple[float, float | None]]:
    """At most two points per pixel column (its lowest and highest, in time order), gaps kept: a line of 2,700
    days drawn 880 pixels wide looks the same and costs a third of the SVG."""
    if len(pairs) <= 2 * columns:
        return pairs
    out: list[tuple[float, float | None]] = []
    bucket: list[tuple[float, float]] = []
    current = -1

    def flush() -> None:
        if len(bucket) <= 2:
            out.extend(bucket)
        else:
            lo, hi = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
            out.extend(sorted({lo, hi}))
        bucket.clear()

    span = (x1 - x0) or 1.0
    for x, y in pairs:
        column = int((x - x0) / span * columns)
        if y is None or column != current:
            flush()
            current = column
        if y is None:
            out.append((x, None))
        else:
            bucket.append((x, y))
    flush()
    return out


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 × 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def fmt_number(v: float) -> str:
    a = abs(v)
    if a >= 1e12:
        return f"{v / 1e12:.3g}T"
    if a >= 1e9:
        return f"{v / 1e9:.3g}B"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 1 or a == 0:
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def fmt_percent(v: float) -> str:
    return f"{v * 100:.0f}%"


def _date_label(seconds: float, span_days: float) -> str:
    d = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if span_days <= 3:
        return d.strftime("%m-%d %H:%M")
    return d.strftime("%Y-%m-%d") if span_days <= 800 else d.strftime("%Y-%m")


def chart(
    series: Sequence[Series],
    *,
    title: str,
    height: int = 260,
    y_format: Callable[[float], str] = fmt_number,
    chart_id: str | None = None,
    y_floor_zero: bool = False,
) -> str:
    """One panel: shared time axis, one y axis, lines and bars, a legend. Empty input gives a note, not a chart."""
    pts: list[tuple[Series, list[tuple[float, float | None]]]] = []
    for s in series:
        pairs = [(_xnum(x), float(y) if _finite(y) else None) for x, y in zip(s.x, s.y, strict=True)]  # type: ignore[arg-type]
        pts.append((s, sorted(pairs, key=lambda p: p[0])))
    values = [y for _, p in pts for _, y in p if y is not None]
    xs = [x for _, p in pts for x, y in p if y is not None]
    ident = f' id="{html.escape(chart_id)}"' if chart_id else ""
    if not values:
        return (
            f'<figure class="chart empty"{ident} data-points="0"><figcaption>{html.escape(title)}</figcaption>'
            '<p class="note">no data to draw</p></figure>'
        )
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 43200, x1 + 43200
    y0, y1 = min(values), max(values)
    if y_floor_zero or any(s.kind == "bar" for s, _ in pts):
        y0 = min(0.0, y0)
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) * 0.05 or 1), y1 + (abs(y1) * 0.05 or 1)
    pad = (y1 - y0) * 0.04
    y0, y1 = (y0 if y0 == 0 else y0 - pad), y1 + pad
    w, h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    pts = [(s, p if s.kind == "bar" else decimate(p, x0, x1, w)) for s, p in pts]

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * h

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{html.escape(title)}" '
        f'preserveAspectRatio="none" class="chart-svg">'
    ]
    for t in nice_ticks(y0, y1):
        yy = sy(t)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{y_format(t)}</text>')
    span_days = (x1 - x0) / 86400
    for i in range(6):
        xv = x0 + (x1 - x0) * i / 5
        anchor = "start" if i == 0 else ("end" if i == 5 else "middle")
        parts.append(
            f'<text class="tick" x="{sx(xv):.1f}" y="{height - 8}" text-anchor="{anchor}">'
            f"{_date_label(xv, span_days)}</text>"
        )
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + h}"/>')
    drawn = 0
    n_bars = max((len(p) for s, p in pts if s.kind == "bar"), default=0)
    bar_w = max(1.0, w / max(n_bars, 1) * 0.8)
    for i, (s, p) in enumerate(pts):
        color = PALETTE[i % len(PALETTE)]
        label = html.escape(s.label)
        if s.kind == "bar":
            base = sy(max(y0, 0.0))
            rects = []
            for x, y in p:
                if y is None:
                    continue
                top = sy(y)
                rects.append(
                    f'<rect x="{sx(x) - bar_w / 2:.1f}" y="{min(top, base):.1f}" width="{bar_w:.1f}" '
                    f'height="{abs(base - top):.1f}"/>'
                )
                drawn += 1
            parts.append(
                f'<g class="bars" fill="{color}" data-label="{label}"><title>{label}</title>{"".join(rects)}</g>'
            )
            continue
        runs: list[list[str]] = [[]]
        for x, y in p:
            if y is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{sx(x):.1f},{sy(y):.1f}")
            drawn += 1
        for r in runs:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"><title>{label}</title></circle>')
            elif r:
                parts.append(
                    f'<polyline class="line" fill="none" stroke="{color}" points="{" ".join(r)}">'
                    f"<title>{label}</title></polyline>"
                )
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(s.label)}</span>'
        for i, (s, _) in enumerate(pts)
    )
    parts.append("</svg>")
    return (
        f'<figure class="chart"{ident} data-points="{drawn}"><figcaption>{html.escape(title)}'
        f'<span class="legend">{legend}</span></figcaption>{"".join(parts)}</figure>'
    )


def series_of(rows: Sequence[dict[str, object]], x: str, y: str, label: str, kind: str = "line") -> Series:
    return Series(label, [r[x] for r in rows], [r.get(y) for r in rows], kind)  # type: ignore[misc]
