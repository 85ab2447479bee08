"""Imported by the local pool's forkserver (the indicator step's `preload`): loads the engine and its numba
kernels once, so every worker forked from it starts with them compiled instead of loading them itself
(~0.3 s of CPU per worker on this machine, the first batch's latency; docs/decisions.md#D118), and freezes the
collector's view of everything imported (`gc.freeze`), so workers do not copy those pages by walking them
(a new worker's start-up fell from ~14,000 page faults and 0.19 s of CPU to ~4,600 and 0.11 s).

Importing this module computes the indicators of a small synthetic frame and freezes the garbage collector's
current objects: only the forkserver imports it.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd

from kallos.indicators.engine import compute_indicators


def warm() -> None:
    """One call of the engine on 300 bars of two coins (one with a close-only bar): every kernel it runs."""
    n = 300
    close = 100.0 * np.exp(np.cumsum(np.sin(np.arange(2 * n)) * 0.01))
    bars = pd.DataFrame(
        {
            "coin_id": np.repeat(["a", "b"], n),
            "date": np.tile(pd.date_range("2020-01-01", periods=n).to_numpy(), 2),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": np.full(2 * n, 1e6),
        }
    )
    bars.loc[n + 5, ["high", "low"]] = np.nan
    compute_indicators(bars)


warm()
# Everything imported so far is shared with the workers forked from here: keep the collector from walking
# (and so writing to, and copying) those pages in every worker.
gc.freeze()
