"""The composite score: a weighted mean of the families' votes, and the action it implies.

Each family votes on each row with its firing rules' signed strengths, summed and clipped to [-1, 1]
(Bollinger can fire a breakout and a re-entry on one day). The score is the weighted mean of the votes of the
families that could vote that day (their indicators present), so a close-only coin without stochastics or CMF
is judged on what it has rather than diluted by families that cannot exist for it. With no family able to vote
the score is 0. The mean of numbers in [-1, 1] stays in [-1, 1] by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.signals.config import Composite, SignalConfig
from kallos.signals.rules import FamilyResult


def composite_score(results: list[FamilyResult], config: SignalConfig, index: pd.Index) -> pd.Series:
    num = pd.Series(0.0, index=index)
    den = pd.Series(0.0, index=index)
    for res in results:
        weight = getattr(config.rules, res.family).weight
        if weight == 0:
            continue
        vote = pd.Series(0.0, index=index)
        for f in res.firings:
            vote = vote + f.direction * f.strength.where(f.fires, 0.0)
        vote = vote.clip(-1.0, 1.0)
        avail = res.available.fillna(False).astype(bool)
        num = num + weight * vote.where(avail, 0.0)
        den = den + weight * avail.astype(float)
    score = (num / den.where(den > 0)).fillna(0.0).clip(-1.0, 1.0)
    return score


def action_of(score: pd.Series, c: Composite) -> pd.Series:
    return pd.Series(
        np.select([score >= c.buy_threshold, score <= c.sell_threshold], ["buy", "sell"], "hold"),
        index=score.index,
        dtype=object,
    )
