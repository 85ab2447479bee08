"""The composite score: a weighted mean of the families' votes, and the action it implies.

Each family votes on each row with its firing rules' signed strengths, summed and clipped to [-1, 1]
(Bollinger can fire a breakout and a re-entry on one day). The score is the weighted mean of the votes of the
families that could vote that day (their indicators present), so a close-only coin without stochastics or CMF
is judged on what it has rather than diluted by families that cannot exist for it. With no family able to vote
the score is 0. The mean of numbers in [-1, 1] stays in [-1, 1] by construction.

`composite_score` is the reference statement beside `kallos.signals.rules`; `generate_signals` computes the same
score in its compiled pass (docs/decisions.md#D119)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.signals.config import Composite, SignalConfig
from kallos.signals.rules import FamilyResult


def composite_score(results: list[FamilyResult], config: SignalConfig, index: pd.Index) -> pd.Series:
    num = np.zeros(len(index))
    den = np.zeros(len(index))
    for res in results:
        weight = getattr(config.rules, res.family).weight
        if weight == 0:
            continue
        vote = np.zeros(len(index))
        for f in res.firings:
            fires = f.fires.to_numpy(dtype=bool)
            vote += f.direction * np.where(fires, f.strength.to_numpy(dtype=float), 0.0)
        np.clip(vote, -1.0, 1.0, out=vote)
        avail = res.available.to_numpy(dtype=bool, na_value=False)
        num += weight * np.where(avail, vote, 0.0)
        den += weight * avail
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return pd.Series(np.clip(np.nan_to_num(score, nan=0.0), -1.0, 1.0), index=index)


ACTIONS = ("buy", "hold", "sell")  # sorted: action_codes index into it


def action_codes(score: np.ndarray, c: Composite) -> np.ndarray:
    """0 buy, 1 hold, 2 sell (indexes of ACTIONS)."""
    return np.where(score >= c.buy_threshold, 0, np.where(score <= c.sell_threshold, 2, 1))
