"""Index charts and the self-contained HTML report.

docs/decisions.md#D25: matplotlib, PNG embedded in the HTML, nothing loaded from a CDN.

The chart functions return a matplotlib Figure (or PNG bytes) so the daily-pipeline report can embed the same
charts. Figures are built with the object API (no pyplot state), so they are safe to make in any thread.
"""

from __future__ import annotations

import base64
import colorsys
import datetime as dt
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from kallos.index.metrics import drawdown_series

LEVEL_PNG = "index_level.png"
WEIGHTS_PNG = "index_weights.png"
REPORT_HTML = "index_report.html"
PNG_NAMES = {
    "level_png": LEVEL_PNG,
    "weights_png": WEIGHTS_PNG,
    "benchmarks_png": "index_benchmarks.png",
    "volatility_png": "index_volatility.png",
    "turnover_png": "index_turnover.png",
    "contributions_png": "index_contributions.png",
}


OTHER = "other"
OTHER_COLOUR = "#8c8c8c"
"""The one grey for "other": the coin palette holds no grey, so no coin ever shares it (docs/decisions.md#D65)."""


def _palette() -> list[str]:
    out: list[str] = []
    for name in ("tab20", "tab20b", "tab20c"):
        for c in colormaps[name].colors:  # type: ignore[attr-defined]
            h, light, sat = colorsys.rgb_to_hls(*c[:3])
            hexed = to_hex(c)
            if sat > 0.15 and hexed not in out:
                out.append(hexed)
    return out


def coin_colours(coins: list[str]) -> dict[str, str]:
    """One distinct colour per coin, in the order given (the most important first), and grey for "other".

    After the ~50 qualitative colours run out, further coins get evenly spaced hues at a lightness the
    palette does not use, so two coins never share a colour."""
    palette = _palette()
    out: dict[str, str] = {}
    extra = max(len(coins) - len(palette), 0)
    for i, coin in enumerate(c for c in coins if c != OTHER):
        if i < len(palette):
            out[coin] = palette[i]
        else:
            j = i - len(palette)
            out[coin] = to_hex(colorsys.hls_to_rgb(j / max(extra, 1), 0.3 + 0.4 * (j % 2), 0.85))
    out[OTHER] = OTHER_COLOUR
    return out


def level_drawdown_figure(values: pd.DataFrame, *, title: str = "Kallos crypto index") -> Figure:
    """Index level (log scale, net series too when present) above its drawdown from the running peak."""
    values = values.sort_values("date")
    fig = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    dates = pd.to_datetime(values["date"])
    top.plot(dates, values["index_value"], color="#1f4e79", linewidth=1.2, label="gross")
    if "net_index_value" in values.columns and values["net_index_value"].notna().any():
        top.plot(dates, values["net_index_value"], color="#c55a11", linewidth=1.0, label="net of costs")
        top.legend(loc="upper left")
    levels = values["index_value"].astype(float)
    if levels.max() / levels.min() > 10:
        top.set_yscale("log")
        top.set_ylabel("level (log scale)")
    else:
        top.set_ylabel("level")
    top.set_title(title)
    top.grid(True, which="major", alpha=0.3)
    dd = drawdown_series(values["index_value"].astype(float)) * 100.0
    bottom.fill_between(dates, dd, 0.0, color="#a61c00", alpha=0.5, linewidth=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(True, alpha=0.3)
    return fig


def weights_figure(
    constituents: pd.DataFrame,
    *,
    top: int = 10,
    title: str = "Target weights",
    colours: dict[str, str] | None = None,
) -> Figure:
    """Target weights at each selection date, stacked; the ``top`` coins by average weight are named,
    the rest grouped as "other" (grey); each coin keeps its one colour of ``colours``."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    if constituents.empty:
        ax.set_title(title + " (none)")
        return fig
    table = constituents.pivot_table(
        index="selection_date", columns="coin_id", values="weight", aggfunc="sum", fill_value=0.0
    ).sort_index()
    order = table.mean().sort_values(ascending=False).index
    named = list(order[:top])
    shown = table[named].copy()
    rest = table.drop(columns=named).sum(axis=1)
    if (rest > 0).any():
        shown["other"] = rest
    x = pd.to_datetime(shown.index)
    if len(x) >= 2:
        # repeat the last weights one period on, so the last selection gets a visible band
        x = x.append(pd.DatetimeIndex([x[-1] + (x[-1] - x[-2])]))
        shown = pd.concat([shown, shown.iloc[[-1]]])
    colours = colours or coin_colours(named)
    ax.stackplot(
        x,
        shown.T.to_numpy() * 100.0,
        labels=list(shown.columns),
        colors=[colours.get(c, OTHER_COLOUR) for c in shown.columns],
        step="post",
        alpha=0.9,
    )
    ax.set_ylim(0, 100)
    ax.set_ylabel("weight %")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
    ax.grid(True, alpha=0.3)
    return fig


def figure_png(fig: Figure, *, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


def level_drawdown_png(values: pd.DataFrame, **kwargs: Any) -> bytes:
    return figure_png(level_drawdown_figure(values, **kwargs))


def weights_png(constituents: pd.DataFrame, **kwargs: Any) -> bytes:
    return figure_png(weights_figure(constituents, **kwargs))


def png_img_tag(png: bytes, alt: str) -> str:
    """An <img> with the PNG inline as a data URI: the HTML file stands alone."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def benchmark_figure(series: dict[str, pd.DataFrame], *, title: str = "Index and benchmarks") -> Figure:
    """Every series' level (log scale when wide), the index first and thickest."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    styles = ["#1f4e79", "#f2a900", "#7a7a7a", "#6a3d9a", "#2ca02c", "#d62728"]
    wide = False
    for i, (name, frame) in enumerate(series.items()):
        frame = frame.sort_values("date")
        levels = frame["index_value"].astype(float)
        wide |= bool(levels.max() / levels.min() > 10)
        ax.plot(
            pd.to_datetime(frame["date"]),
            levels,
            label=name,
            color=styles[i % len(styles)],
            linewidth=1.6 if i == 0 else 1.0,
            linestyle="-" if i < 2 else "--",
        )
    if wide:
        ax.set_yscale("log")
    ax.set_ylabel("level" + (" (log scale)" if wide else ""))
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return fig


def rolling_volatility_figure(series: dict[str, pd.Series], *, window: int = 90) -> Figure:
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.subplots()
    for i, (name, vol) in enumerate(series.items()):
        ax.plot(vol.index, vol.to_numpy() * 100.0, label=name, linewidth=1.4 if i == 0 else 0.9)
    ax.set_ylabel("annualised volatility %")
    ax.set_title(f"Rolling {window}-day volatility")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(True, alpha=0.3)
    return fig


def turnover_figure(turnover: pd.DataFrame) -> Figure:
    """One-way turnover at every rebalance after the first."""
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax = fig.subplots()
    if not turnover.empty:
        ax.bar(pd.to_datetime(turnover["selection_date"]), turnover["turnover"] * 100.0, width=20, color="#1f4e79")
        ax.axhline(float(turnover["turnover"].mean()) * 100.0, color="#c55a11", linewidth=1, label="average")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_ylabel("one-way turnover %")
    ax.set_title("Turnover at each rebalance")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def contributions_figure(yearly: pd.DataFrame, colours: dict[str, str], *, top: int = 10) -> Figure:
    """Each year's return split into coin contributions (stacked bars, positive up, negative down); the
    ``top`` coins by absolute contribution over all years are named, the rest are "other"."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    if yearly.empty:
        ax.set_title("Contributions by year (none)")
        return fig
    table = yearly.pivot_table(index="year", columns="coin_id", values="contribution", aggfunc="sum", fill_value=0.0)
    named = list(table.abs().sum().sort_values(ascending=False).index[:top])
    shown = table[named].copy()
    rest = table.drop(columns=named)
    if not rest.empty:
        shown[OTHER] = rest.sum(axis=1)
    x = np.arange(len(shown.index))
    pos = np.zeros(len(x))
    neg = np.zeros(len(x))
    for coin in shown.columns:
        v = shown[coin].to_numpy() * 100.0
        bottom = np.where(v >= 0, pos, neg)
        ax.bar(x, v, bottom=bottom, color=colours.get(coin, OTHER_COLOUR), label=coin, width=0.7)
        pos += np.where(v >= 0, v, 0.0)
        neg += np.where(v < 0, v, 0.0)
    total = table.sum(axis=1).to_numpy() * 100.0
    ax.plot(x, total, "k_", markersize=18, label="index return")
    ax.set_xticks(x, [str(y) for y in shown.index])
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("contribution, percentage points")
    ax.set_title("Contributions to each year's return")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
    return fig


RATIO_KEYS = frozenset({"sharpe", "net_sharpe", "information_ratio", "beta"})


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (dt.date, pd.Timestamp)):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if key in RATIO_KEYS:
            return f"{value:.3f}"
        return f"{value * 100:.2f}%"
    return html.escape(str(value))


def render_html(
    values: pd.DataFrame,
    constituents: pd.DataFrame,
    metrics: dict[str, Any],
    *,
    level_png: bytes | None = None,
    weights_png_bytes: bytes | None = None,
    title: str = "Kallos crypto index",
    sections: str = "",
) -> str:
    """The self-contained report; ``sections`` (from :func:`analysis_sections`) adds the benchmark
    comparison, return tables, volatility, turnover and attribution."""
    level_png = level_png if level_png is not None else level_drawdown_png(values)
    weights_png_bytes = weights_png_bytes if weights_png_bytes is not None else weights_png(constituents)
    rows = "\n".join(
        f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{_fmt(k, v)}</td></tr>"
        for k, v in metrics.items()
        if k != "fill_count"
    )
    latest = ""
    if not constituents.empty:
        last = constituents.loc[constituents["selection_date"] == constituents["selection_date"].max()]
        last = last.sort_values("rank")
        body = "\n".join(
            f"<tr><td>{int(r.rank)}</td><td>{html.escape(str(r.coin_id))}</td>"
            f"<td>{r.weight * 100:.2f}%</td><td>{r.market_cap:,.0f}</td></tr>"
            for r in last.itertuples(index=False)
        )
        day = pd.Timestamp(last["selection_date"].iloc[0]).date().isoformat()
        latest = (
            f"<h2>Constituents selected {day}</h2>\n<table><tr><th>rank</th><th>coin</th><th>weight</th>"
            f"<th>market cap (USD)</th></tr>\n{body}\n</table>"
        )
    span = ""
    if not values.empty:
        first = pd.Timestamp(values["date"].min()).date().isoformat()
        final = pd.Timestamp(values["date"].max()).date().isoformat()
        base_level = values.sort_values("date")["index_value"].iloc[0]
        span = f"<p>Base date {first} (level {base_level:g}), valued through {final}.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
{span}
<h2>Metrics</h2>
<table>
{rows}
</table>
<h2>Level and drawdown</h2>
{png_img_tag(level_png, "index level and drawdown")}
<h2>Weights over time</h2>
{png_img_tag(weights_png_bytes, "constituent weights over time")}
{sections}
{latest}
<p>Methodology: docs/index.md. Monthly rebalance, capped market-cap weights, gross of costs unless a net
series is shown.</p>
</body></html>
"""


@dataclass
class Analysis:
    """What `kallos index report` adds to the level and weights (docs/decisions.md#D63-D65)."""

    comparison: pd.DataFrame
    """metric x series: the index and its benchmarks over the metrics window."""
    window: tuple[dt.date, dt.date]
    series: dict[str, pd.DataFrame]
    """name -> date, index_value, daily_return; the index first."""
    monthly: pd.DataFrame
    """year x month returns plus the year's return (`kallos.index.analysis.monthly_table`)."""
    rolling_vol: dict[str, pd.Series]
    turnover: pd.DataFrame
    yearly_contributions: pd.DataFrame
    movers_by_year: pd.DataFrame
    movers_by_month: pd.DataFrame
    colours: dict[str, str] = field(default_factory=dict)


def _pct(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:.2f}%"


def _comparison_html(comparison: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in comparison.columns)
    body = "\n".join(
        f"<tr><th>{html.escape(str(k).replace('_', ' '))}</th>"
        + "".join(f"<td>{_fmt(str(k), v)}</td>" for v in row)
        + "</tr>"
        for k, row in zip(comparison.index, comparison.to_numpy(), strict=True)
    )
    return f'<table id="benchmarks"><tr><th>metric</th>{head}</tr>\n{body}\n</table>'


def _monthly_html(monthly: pd.DataFrame) -> str:
    months = "".join(f"<th>{dt.date(2000, m, 1):%b}</th>" for m in range(1, 13))
    rows = "\n".join(
        f"<tr><th>{year}</th>"
        + "".join(f"<td>{_pct(r[m])}</td>" for m in range(1, 13))
        + f"<td><b>{_pct(r['year'])}</b></td></tr>"
        for year, r in monthly.iterrows()
    )
    return f'<table id="monthly-returns"><tr><th>year</th>{months}<th>year</th></tr>\n{rows}\n</table>'


def _movers_html(movers: pd.DataFrame, by: str, colours: dict[str, str], table_id: str) -> str:
    if movers.empty:
        return f'<p id="{table_id}">No contributions yet.</p>'
    rows = []
    for key, part in movers.groupby(by, sort=False):
        cells = []
        for kind in ("contributor", "detractor"):
            sel = part.loc[part["kind"] == kind]
            cells.append(
                ", ".join(
                    f'<span style="color:{colours.get(c, OTHER_COLOUR)}">&#9632;</span> '
                    f"{html.escape(str(c))} {v * 100:+.2f} pp"
                    for c, v in zip(sel["coin_id"], sel["contribution"], strict=True)
                )
                or "–"
            )
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{cells[0]}</td><td>{cells[1]}</td></tr>")
    return (
        f'<table id="{table_id}"><tr><th>{by}</th><th>top contributors</th><th>top detractors</th></tr>\n'
        + "\n".join(rows)
        + "\n</table>"
    )


def analysis_pngs(analysis: Analysis) -> dict[str, bytes]:
    return {
        "benchmarks_png": figure_png(benchmark_figure(analysis.series)),
        "volatility_png": figure_png(rolling_volatility_figure(analysis.rolling_vol)),
        "turnover_png": figure_png(turnover_figure(analysis.turnover)),
        "contributions_png": figure_png(contributions_figure(analysis.yearly_contributions, analysis.colours)),
    }


def analysis_sections(analysis: Analysis, pngs: dict[str, bytes]) -> str:
    lo, hi = analysis.window
    recent = analysis.movers_by_month
    if not recent.empty:
        keep = sorted(recent["month"].unique())[-24:]
        recent = recent.loc[recent["month"].isin(keep)].sort_values("month", ascending=False, kind="stable")
    by_year = analysis.movers_by_year.sort_values("year", ascending=False, kind="stable")
    return f"""<h2>Index and benchmarks</h2>
<p>Metrics from {lo.isoformat()} to {hi.isoformat()} (the metrics window), every series re-based to that
window's first day. Tracking error, information ratio and beta are measured against bitcoin buy-and-hold.</p>
{_comparison_html(analysis.comparison)}
{png_img_tag(pngs["benchmarks_png"], "index and benchmark levels")}
<h2>Monthly and yearly returns</h2>
{_monthly_html(analysis.monthly)}
<h2>Rolling 90-day volatility</h2>
{png_img_tag(pngs["volatility_png"], "rolling 90-day volatility")}
<h2>Turnover</h2>
{png_img_tag(pngs["turnover_png"], "turnover at each rebalance")}
<h2>Attribution</h2>
<p>A coin's contribution to a month is its weight at the month's start times its price return over the month;
the contributions add up to the index's return. Years link months by the index level at each month's start.</p>
{png_img_tag(pngs["contributions_png"], "contributions to each year's return")}
<h3>By year</h3>
{_movers_html(by_year, "year", analysis.colours, "movers-by-year")}
<h3>By month (latest 24)</h3>
{_movers_html(recent, "month", analysis.colours, "movers-by-month")}
"""


def write_report(
    out_dir: Path,
    values: pd.DataFrame,
    constituents: pd.DataFrame,
    metrics: dict[str, Any],
    *,
    title: str = "Kallos crypto index",
    analysis: Analysis | None = None,
) -> dict[str, Path]:
    """Write the PNG charts and the self-contained HTML report; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = analysis.colours if analysis else None
    level = level_drawdown_png(values, title=title)
    weights = figure_png(weights_figure(constituents, colours=colours))
    pngs = {"level_png": level, "weights_png": weights}
    sections = ""
    if analysis is not None:
        extra = analysis_pngs(analysis)
        sections = analysis_sections(analysis, extra)
        pngs.update(extra)
    paths = {key: out_dir / PNG_NAMES[key] for key in pngs}
    for key, data in pngs.items():
        paths[key].write_bytes(data)
    paths["html"] = out_dir / REPORT_HTML
    paths["html"].write_text(
        render_html(
            values,
            constituents,
            metrics,
            level_png=level,
            weights_png_bytes=weights,
            title=title,
            sections=sections,
        ),
        encoding="utf-8",
    )
    return paths
