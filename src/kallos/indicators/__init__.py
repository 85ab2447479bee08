"""Technical indicators (docs/indicators.md): a pure engine over bar frames and the pipeline step.

from kallos.indicators import compute_indicators
out = compute_indicators(bars)        # bars: date, open, high, low, close, volume [, coin_id]

The engine (and TA-Lib) loads on first use of one of its names, so the store can import the column contract
(kallos.indicators.contract) without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kallos.indicators.contract import COMPOSITE_COLUMNS, INDICATOR_COLUMNS, OUTPUT_COLUMNS

if TYPE_CHECKING:
    from kallos.indicators.engine import compute_indicators, compute_panel
    from kallos.indicators.validation import validate_indicators

__all__ = [
    "COMPOSITE_COLUMNS",
    "INDICATOR_COLUMNS",
    "OUTPUT_COLUMNS",
    "compute_indicators",
    "compute_panel",
    "validate_indicators",
]

_LAZY = {
    "compute_indicators": "kallos.indicators.engine",
    "compute_panel": "kallos.indicators.engine",
    "validate_indicators": "kallos.indicators.validation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
