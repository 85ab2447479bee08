"""Capped market-cap weights by iterative proportional redistribution (docs/decisions.md (C-IDX) item 5).

Kept apart from selection so the property tests can drive it with arbitrary vectors: the weights sum to 1,
none exceeds the cap, uncapped coins keep their market-cap ratios, and capping capped weights changes nothing.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

CAP_TOLERANCE = 1e-12
"""A weight is over the cap only when it exceeds ``max_weight * (1 + CAP_TOLERANCE)`` (docs/decisions.md#D19)."""


class CapInfeasibleError(ValueError):
    """Fewer coins than ⌈1 / max_weight⌉: no weights can respect the cap. The caller names the date."""


def min_coins_for_cap(max_weight: float) -> int:
    """⌈1 / max_weight⌉, robust to 1/0.2 = 5.000000000000001 style rounding."""
    if not 0 < max_weight <= 1:
        raise ValueError(f"max_weight must be in (0, 1], got {max_weight!r}")
    raw = 1.0 / max_weight
    nearest = round(raw)
    return int(nearest) if math.isclose(raw, nearest, rel_tol=1e-12) else math.ceil(raw)


def cap_weights(market_caps: npt.ArrayLike, max_weight: float) -> npt.NDArray[np.float64]:
    """Market-cap weights with every weight above ``max_weight`` set to it, the excess shared by the rest.

    The excess goes to the uncapped coins in proportion to their original market caps; a coin pushed
    over the cap by a redistribution is capped in the next round, so the loop ends after at most
    ``len(market_caps)`` rounds.
    """
    m = np.asarray(market_caps, dtype=np.float64)
    if m.ndim != 1 or m.size == 0:
        raise CapInfeasibleError("no coins to weight")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("market caps must be finite and positive")
    if m.size < min_coins_for_cap(max_weight):
        raise CapInfeasibleError(
            f"{m.size} coin(s) cannot be capped at {max_weight:g}: "
            f"at least {min_coins_for_cap(max_weight)} needed"
        )
    limit = max_weight * (1.0 + CAP_TOLERANCE)
    w = m / m.sum()
    capped = np.zeros(m.size, dtype=bool)
    for _ in range(m.size):
        over = (~capped) & (w > limit)
        if not over.any():
            break
        capped |= over
        free = ~capped
        if not free.any():
            w = np.full(m.size, max_weight)
            break
        rest = 1.0 - max_weight * int(capped.sum())
        w = np.where(capped, max_weight, m * (rest / m[free].sum()))
    return w
