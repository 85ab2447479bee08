"""Metrics edge rules (docs/decisions.md#D19) and the chart functions the pipeline report reuses."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from kallos.index import build_index, compute_metrics
from kallos.index.report import (
    level_drawdown_figure,
    level_drawdown_png,
    render_html,
    weights_figure,
    weights_png,
)

from .index_frames import random_market


def frame(levels: list[float], start: str = "2024-01-01") -> pd.DataFrame:
    dates = pd.date_range(start, periods=len(levels))
    lv = np.asarray(levels, dtype=float)
    ret = np.concatenate([[0.0], lv[1:] / lv[:-1] - 1])
    return pd.DataFrame({"date": dates, "index_value": lv, "daily_return": ret})


def test_drawdown_peak_is_the_last_running_max_and_trough_the_first_minimum() -> None:
    m = compute_metrics(frame([1000, 1100, 1000, 1100, 900, 1050, 900, 1200]))
    assert m["max_drawdown"] == pytest.approx(900 / 1100 - 1)
    assert m["max_drawdown_peak"] == dt.date(2024, 1, 4)
    assert m["max_drawdown_trough"] == dt.date(2024, 1, 5)


def test_no_drawdown_means_no_dates() -> None:
    m = compute_metrics(frame([1000, 1000, 1010, 1020]))
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_peak"] is None and m["max_drawdown_trough"] is None


def test_annualization_and_turnover() -> None:
    f = frame([1000, 1010, 1030.2, 1000])
    m = compute_metrics(f, pd.DataFrame({"turnover": [0.1, 0.3]}), annualization=252)
    r = f["daily_return"].to_numpy()[1:]
    assert m["total_return"] == pytest.approx(0.0)
    assert m["annualized_return"] == pytest.approx(0.0, abs=1e-15)
    assert m["volatility"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(252))
    assert m["avg_monthly_turnover"] == pytest.approx(0.2)


def test_base_date_only() -> None:
    m = compute_metrics(frame([1000]))
    assert m["total_return"] == 0.0
    assert math.isnan(m["annualized_return"]) and math.isnan(m["volatility"]) and math.isnan(m["sharpe"])
    assert math.isnan(m["avg_monthly_turnover"])


def test_charts_and_html() -> None:
    res = build_index(
        random_market(30, n_coins=14, days=500), n_constituents=12, min_history_days=60, cost_bps=20
    )
    fig = level_drawdown_figure(res.values)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2  # gross and net
    wf = weights_figure(res.constituents, top=5)
    assert len(wf.axes[0].collections) == 6  # 5 named coins + other
    png = level_drawdown_png(res.values)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert weights_png(res.constituents)[:8] == b"\x89PNG\r\n\x1a\n"
    html = render_html(res.values, res.constituents, res.metrics)
    assert html.count("data:image/png;base64,") == 2
    assert 'src="http' not in html and "<script" not in html
    assert "max drawdown" in html
