"""Index charts and the self-contained HTML report.

decisions.md #25: matplotlib, PNG embedded in the HTML, nothing loaded from a CDN.

The chart functions return a matplotlib Figure (or PNG bytes) so the daily-pipeline report can embed the same
charts. Figures are built with the object API (no pyplot state), so they are safe to make in any thread.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from kallos.index.metrics import drawdown_series

LEVEL_PNG = "index_level.png"
WEIGHTS_PNG = "index_weights.png"
REPORT_HTML = "index_report.html"


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


def weights_figure(constituents: pd.DataFrame, *, top: int = 10, title: str = "Target weights") -> Figure:
    """Target weights at each selection date, stacked; the ``top`` coins by average weight are named,
    the rest grouped as "other"."""
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
    ax.stackplot(x, shown.T.to_numpy() * 100.0, labels=list(shown.columns), step="post", alpha=0.9)
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


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (dt.date, pd.Timestamp)):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if key in {"sharpe", "net_sharpe"}:
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
) -> str:
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
{latest}
<p>Methodology: docs/index.md. Monthly rebalance, capped market-cap weights, gross of costs unless a net
series is shown.</p>
</body></html>
"""


def write_report(
    out_dir: Path,
    values: pd.DataFrame,
    constituents: pd.DataFrame,
    metrics: dict[str, Any],
    *,
    title: str = "Kallos crypto index",
) -> dict[str, Path]:
    """Write the two PNG charts and the self-contained HTML report; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    level = level_drawdown_png(values, title=title)
    weights = weights_png(constituents)
    paths = {
        "level_png": out_dir / LEVEL_PNG,
        "weights_png": out_dir / WEIGHTS_PNG,
        "html": out_dir / REPORT_HTML,
    }
    paths["level_png"].write_bytes(level)
    paths["weights_png"].write_bytes(weights)
    paths["html"].write_text(
        render_html(values, constituents, metrics, level_png=level, weights_png_bytes=weights, title=title),
        encoding="utf-8",
    )
    return paths
