"""One-way turnover at a rebalance (docs/decisions.md (C-IDX) item 9, docs/index.md).

Measured against the drifted pre-trade weights, not the previous targets: it is the fraction of the portfolio
bought at the rebalance, which equals the fraction sold.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def one_way_turnover(
    drifted_cols: npt.NDArray[np.int64],
    drifted: npt.NDArray[np.float64],
    target_cols: npt.NDArray[np.int64],
    target: npt.NDArray[np.float64],
) -> float:
    """½ Σ |w_target − w_drifted| over the union of old and new constituents (a leaver's target is 0)."""
    old = dict(zip(drifted_cols.tolist(), drifted.tolist(), strict=True))
    new = dict(zip(target_cols.tolist(), target.tolist(), strict=True))
    return 0.5 * sum(abs(new.get(c, 0.0) - old.get(c, 0.0)) for c in sorted(old.keys() | new.keys()))
