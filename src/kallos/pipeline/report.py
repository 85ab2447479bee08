"""The pipeline's HTML report: one self-contained file (charts as base64 PNG, no CDN, no script).

Sections: summary (the run and the index metrics), the index level and its drawdown (`#index-chart`),
constituents and weights (`#weights-chart`), the latest signals, and a data-quality summary from
`data_quality_events` and the coverage figures. The index charts are the index module's own, so the demo
report and `kallos index report` show the same pictures.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from kallos.pipeline.runner import RunSummary
from kallos.pipeline.status import coverage
from kallos.store import Store

REPORT_NAME = "kallos_report.html"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       color: #1d232a; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 2px solid #1f4e79; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f1f4f8; }
.ok { color: #1b7f3b; font-weight: 600; } .partial { color: #b8860b; font-weight: 600; }
.failed { color: #b00020; font-weight: 600; } .skipped { color: #777; }
figure { margin: 0.5em 0; } img { max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9em; } .grid { display: flex; gap: 2em; flex-wrap: wrap; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, pct: bool = False, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, (dt.date, pd.Timestamp)):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value * 100:.{digits}f}%" if pct else f"{value:,.{digits}f}"
    return _e(value)


def _table(header: list[str], rows: list[list[str]], *, cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">{thead}<tbody>\n{body}\n</tbody></table>'


def _status(status: str) -> str:
    css = {"success": "ok", "partial": "partial", "failed": "failed", "skipped": "skipped"}.get(status, "")
    return f'<span class="{css}">{_e(status)}</span>'


def _img(png: bytes, alt: str, element_id: str) -> str:
    from kallos.index.report import png_img_tag

    caption = f'<figcaption class="note">{_e(alt)}</figcaption>'
    return f'<figure id="{element_id}">{png_img_tag(png, alt)}{caption}</figure>'


# ---- sections ----------------------------------------------------------------------------------------------


def summary_section(summary: RunSummary | None, metrics: dict[str, Any] | None, extra: dict[str, Any]) -> str:
    parts = ['<section id="summary"><h2>Summary</h2>']
    if extra:
        parts.append(_table(["", ""], [[_e(k), _e(v)] for k, v in extra.items()]))
    if summary is not None:
        totals = summary.totals()
        parts.append(
            f"<p>Run <code>{_e(summary.run_id)}</code> ({_e(summary.command)}): {_status(summary.status)} in "
            f"{summary.duration_seconds:.1f} s; {totals['coins_updated']:,} coins updated, "
            f"{totals['rows_written']:,} rows written, {totals['rows_quarantined']:,} rows quarantined, "
            f"{totals['api_calls']:,} API calls, {totals['api_credits']:,} credits.</p>"
        )
        rows = []
        for s in summary.steps:
            rows.append(
                [
                    _e(s.name),
                    _status(s.status),
                    f"{s.duration_seconds:.2f} s",
                    _num(s.outcome.rows_written),
                    _num(s.outcome.api_calls),
                    _e(s.error or s.outcome.reason or ""),
                ]
            )
        parts.append(_table(["step", "status", "duration", "rows written", "API calls", "note"], rows))
    if metrics:
        pct = {"total_return", "annualized_return", "volatility", "max_drawdown", "avg_monthly_turnover"}
        rows = [
            [_e(k.replace("_", " ")), _num(v, pct=k in pct, digits=3 if k == "sharpe" else 2)]
            for k, v in metrics.items()
            if k != "fill_count"
        ]
        parts.append("<h3>Index metrics</h3>" + _table(["metric", "value"], rows))
    parts.append("</section>")
    return "\n".join(parts)


def index_section(values: pd.DataFrame) -> str:
    if values.empty:
        return (
            '<section id="index"><h2>Index level and drawdown</h2>'
            '<p class="note">The index is not built yet: no '
            "month end has enough eligible coins with stored history.</p></section>"
        )
    from kallos.index.report import level_drawdown_png

    first, last = values["date"].min(), values["date"].max()
    level = float(values.sort_values("date")["index_value"].iloc[-1])
    return (
        '<section id="index"><h2>Index level and drawdown</h2>'
        f"<p>Base date {_num(first)}, valued through {_num(last)}; latest level {level:,.2f}.</p>"
        + _img(
            level_drawdown_png(values),
            "Index level (log scale) and drawdown from the running peak",
            "index-chart",
        )
        + "</section>"
    )


def constituents_section(constituents: pd.DataFrame) -> str:
    if constituents.empty:
        return (
            '<section id="constituents"><h2>Constituents and weights</h2>'
            '<p class="note">None yet.</p></section>'
        )
    from kallos.index.report import weights_png

    last_day = constituents["selection_date"].max()
    last = constituents.loc[constituents["selection_date"] == last_day].sort_values("rank")
    rows = [
        [_e(int(r.rank)), _e(r.coin_id), f"{float(r.weight) * 100:.2f}%", f"{float(r.market_cap):,.0f}"]
        for r in last.itertuples(index=False)
    ]
    return (
        '<section id="constituents"><h2>Constituents and weights</h2>'
        f"<p>Selected at {_num(last_day)} for the following month ({len(last)} coins).</p>"
        + '<div class="grid"><div>'
        + _table(["rank", "coin", "weight", "market cap (USD)"], rows)
        + "</div></div>"
        + _img(weights_png(constituents), "Target weights at each monthly selection", "weights-chart")
        + "</section>"
    )


def signals_section(store: Store, top: int = 10) -> str:
    last = store.scalar("SELECT max(date) FROM trading_signals")
    if last is None:
        return '<section id="signals"><h2>Latest signals</h2><p class="note">No signals stored.</p></section>'
    day = pd.Timestamp(last).date()
    frame = store.read("trading_signals", start=day, end=day)
    comp = frame[frame["signal"] == "composite"].sort_values(
        ["composite_score", "coin_id"], ascending=[False, True]
    )
    rules = frame[frame["signal"] != "composite"].sort_values(["signal", "coin_id"])
    actions = comp["action"].value_counts().to_dict() if len(comp) else {}
    parts = [
        '<section id="signals"><h2>Latest signals</h2>',
        f"<p>{_num(day)}: {len(comp)} coins scored; "
        + ", ".join(f"{_e(k)} {v}" for k, v in sorted(actions.items()))
        + f"; {len(rules)} rule signal(s) fired.</p>",
    ]

    def rows_of(part: pd.DataFrame) -> list[list[str]]:
        return [
            [_e(r.coin_id), f"{float(r.composite_score):+.3f}", _e(r.action)]
            for r in part.itertuples(index=False)
            if r.composite_score is not None and not pd.isna(r.composite_score)
        ]

    if len(comp):
        n_high = min(top, (len(comp) + 1) // 2)  # the two tables never show the same coin
        n_low = min(top, len(comp) - n_high)
        parts.append('<div class="grid"><div><h3>Highest composite scores</h3>')
        parts.append(_table(["coin", "score", "action"], rows_of(comp.head(n_high))))
        parts.append("</div><div><h3>Lowest composite scores</h3>")
        parts.append(_table(["coin", "score", "action"], rows_of(comp.tail(n_low).iloc[::-1])))
        parts.append("</div></div>")
    if len(rules):
        rows = [
            [_e(r.signal), _e(r.coin_id), "+1" if r.direction == 1 else "−1", _num(float(r.strength))]
            for r in rules.head(40).itertuples(index=False)
        ]
        parts.append("<h3>Rules that fired</h3>" + _table(["rule", "coin", "direction", "strength"], rows))
    parts.append("</section>")
    return "\n".join(parts)


def quality_section(store: Store, min_coverage: float) -> str:
    events = store.query(
        "SELECT action, reason, count(*) AS n, count(DISTINCT coin_id) AS coins, min(date) AS first_date, "
        "max(date) AS last_date FROM data_quality_events GROUP BY action, reason ORDER BY action, reason"
    )
    cov = coverage(store, min_coverage)
    parts = ['<section id="data-quality"><h2>Data quality</h2>']
    parts.append(
        _table(
            ["coverage", "value"],
            [
                ["coins", _num(cov["coins"])],
                ["coins with market data", _num(cov["coins_with_market_data"])],
                [f"coins with coverage ≥ {min_coverage:.0%}", _num(cov["coins_meeting_min_coverage"])],
                ["mean coverage", _num(cov["mean_coverage"], pct=True, digits=1)],
                ["coins with indicators", _num(cov["coins_with_indicators"])],
                ["market data from", _num(cov["first_date"])],
                ["market data through", _num(cov["last_date"])],
            ],
        )
    )
    if events.empty:
        parts.append('<p class="note">No data-quality events recorded.</p>')
    else:
        rows = [
            [
                _e(r.action),
                _e(r.reason),
                _num(int(r.n)),
                _num(int(r.coins)),
                _num(r.first_date),
                _num(r.last_date),
            ]
            for r in events.itertuples(index=False)
        ]
        parts.append(
            "<p>Every deviation from the raw data is recorded (quarantined rows are not loaded; nulled, "
            "floored and "
            "deduplicated values are corrected; flagged rows are kept).</p>"
            + _table(["action", "reason", "events", "coins", "first", "last"], rows)
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_report(
    store: Store,
    *,
    summary: RunSummary | None = None,
    title: str = "Kallos report",
    extra: dict[str, Any] | None = None,
    min_coverage: float = 0.9,
) -> tuple[str, dict[str, Any] | None]:
    """The report's HTML and the index metrics (None when the index is not built)."""
    from kallos.index.metrics import compute_metrics
    from kallos.index.step import read_index

    values, constituents, turnover = read_index(store)
    metrics = compute_metrics(values, turnover) if not values.empty else None
    body = "\n".join(
        [
            summary_section(summary, metrics, extra or {}),
            index_section(values),
            constituents_section(constituents),
            signals_section(store),
            quality_section(store, min_coverage),
        ]
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
{body}
<p class="note">Generated by Kallos. Simulated or real, every number here comes from the store; methodology in
docs/index.md and docs/signals.md.</p>
</body></html>
"""
    return doc, metrics


def write_report(store: Store, path: Path | str, **kwargs: Any) -> tuple[Path, dict[str, Any] | None]:
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        path = path / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    doc, metrics = render_report(store, **kwargs)
    path.write_text(doc, encoding="utf-8")
    return path, metrics
