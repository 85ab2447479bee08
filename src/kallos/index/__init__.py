"""The Kallos crypto index: top coins by market cap, capped, rebalanced monthly (docs/index.md).

The calculation is pure (:func:`build_index`: a frame in, an :class:`IndexResult` out); reading and writing
the store is :mod:`kallos.index.step`, charts and the HTML report are :mod:`kallos.index.report`.
"""

from kallos.index.build import IndexResult, NoQualifyingSelectionError, build_index
from kallos.index.capping import cap_weights
from kallos.index.exclusions import EXCLUDED_CATEGORIES, EXCLUDED_COIN_IDS, excluded_coins
from kallos.index.metrics import compute_metrics

__all__ = [
    "EXCLUDED_CATEGORIES",
    "EXCLUDED_COIN_IDS",
    "IndexResult",
    "NoQualifyingSelectionError",
    "build_index",
    "cap_weights",
    "compute_metrics",
    "excluded_coins",
]
