"""Selection dates, eligibility and constituents (docs/decisions.md (C-IDX) items 1-4), point in time.

Everything decided at selection date `s` (grid row ``i``) reads rows ``<= i`` only: the valid flag
and market cap on `s`, a running count of valid observations, and whether the first valid observation is
old enough. Changing any row after `s` cannot change what is chosen at `s`
(tests/index/test_index_lookahead.py corrupts them to prove it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kallos.index.panel import Panel, day_to_date

REBALANCE_MONTHS = {"M": frozenset(range(1, 13)), "Q": frozenset({3, 6, 9, 12})}


def selection_rows(panel: Panel, rebalance: str = "M") -> npt.NDArray[np.int64]:
    """Grid rows that are the last calendar day of a (rebalance) month."""
    months = REBALANCE_MONTHS[rebalance]
    days = panel.days.astype("datetime64[D]")
    month_of = days.astype("datetime64[M]")
    is_last = month_of != (days + 1).astype("datetime64[M]")
    month_num = month_of.astype(np.int64) % 12 + 1
    wanted = np.isin(month_num, list(months))
    return np.flatnonzero(is_last & wanted).astype(np.int64)


class Eligibility:
    """Eligibility at any selection row, from running counts computed once."""

    def __init__(
        self,
        panel: Panel,
        *,
        excluded: npt.NDArray[np.bool_],
        min_history_days: int,
        min_coverage: float,
    ) -> None:
        self.panel = panel
        valid = panel.valid
        self._valid = valid
        self._cum = np.vstack([np.zeros((1, valid.shape[1]), dtype=np.int64), np.cumsum(valid, axis=0)])
        has_any = valid.any(axis=0)
        first = np.where(has_any, valid.argmax(axis=0), np.iinfo(np.int64).max)
        self._first_valid = first.astype(np.int64)
        self._excluded = excluded
        self.min_history_days = int(min_history_days)
        # a count of valid days is an integer: compare against the threshold with a hair of slack for rounding
        self._min_count = float(min_coverage) * self.min_history_days - 1e-9

    def mask(self, row: int) -> npt.NDArray[np.bool_]:
        h = self.min_history_days
        window_count = self._cum[row + 1] - self._cum[max(row + 1 - h, 0)]
        return (
            self._valid[row]
            & ~self._excluded
            & (self._first_valid <= row - h)
            & (window_count >= self._min_count)
        )

    def count(self, row: int) -> int:
        return int(self.mask(row).sum())


@dataclass(frozen=True)
class Selection:
    row: int
    columns: npt.NDArray[np.int64]
    """Panel columns of the constituents, in rank order."""
    ranks: npt.NDArray[np.int64]
    """1-based market-cap rank among the eligible coins on the selection date."""
    market_caps: npt.NDArray[np.float64]
    eligible: int


def rank_eligible(panel: Panel, row: int, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Eligible columns by market cap descending; ties by CoinGecko id (the column order)."""
    cols = np.flatnonzero(mask)
    caps = panel.market_cap[row, cols]
    order = np.lexsort((cols, -caps))
    return cols[order].astype(np.int64)


def choose(
    panel: Panel,
    row: int,
    mask: npt.NDArray[np.bool_],
    *,
    n_constituents: int,
    incumbents: Sequence[int] | npt.NDArray[np.int64] = (),
    rank_buffer: int = 0,
) -> Selection:
    """The top ``n_constituents`` eligible coins; with a rank buffer, incumbents ranked within
    ``n_constituents + rank_buffer`` keep their seat and newcomers fill the remaining seats in rank order."""
    ranked = rank_eligible(panel, row, mask)
    rank_of = {int(c): r for r, c in enumerate(ranked, start=1)}
    if rank_buffer > 0 and len(incumbents):
        keep = [c for c in incumbents if rank_of.get(int(c), 10**9) <= n_constituents + rank_buffer]
        keep_set = set(keep)
        seats = max(n_constituents - len(keep), 0)
        newcomers = [int(c) for c in ranked if int(c) not in keep_set][:seats]
        chosen = sorted([int(c) for c in keep] + newcomers, key=lambda c: rank_of[c])[:n_constituents]
        cols = np.asarray(chosen, dtype=np.int64)
    else:
        cols = ranked[:n_constituents]
    ranks = np.asarray([rank_of[int(c)] for c in cols], dtype=np.int64)
    return Selection(
        row=row,
        columns=cols,
        ranks=ranks,
        market_caps=panel.market_cap[row, cols].copy(),
        eligible=len(ranked),
    )


def selection_date(panel: Panel, row: int) -> str:
    return day_to_date(int(panel.days[row])).isoformat()
