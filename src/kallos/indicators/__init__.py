"""Technical indicators (docs/indicators.md): a pure engine over bar frames and the pipeline step.

from kallos.indicators import compute_indicators
out = compute_indicators(bars)        # bars: date, open, high, low, close, volume [, coin_id]
"""

from __future__ import annotations

from kallos.indicators.contract import COMPOSITE_COLUMNS, INDICATOR_COLUMNS, OUTPUT_COLUMNS
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
