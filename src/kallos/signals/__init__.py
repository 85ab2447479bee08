"""Trading signals: rules over the indicator columns, a weighted composite score, and their evaluation.

    from kallos.signals import generate_signals, load_signal_config
    signals = generate_signals(indicator_frame, load_signal_config())   # pure: frame in, frame out

`config` (signal_generation.json, validated), `rules` (one function per rule family), `composite` (score and
action), `engine` (the pure entry point), `evaluation` (forward returns by signal), `step` (store in, store
out)."""

from __future__ import annotations

from kallos.signals.config import SignalConfig, load_signal_config, parse_signal_config
from kallos.signals.engine import COMPOSITE, SIGNAL_COLUMNS, generate_signals
from kallos.signals.evaluation import evaluate_signals, forward_returns, parse_horizons
from kallos.signals.rules import RULE_IDS

__all__ = [
    "COMPOSITE",
    "RULE_IDS",
    "SIGNAL_COLUMNS",
    "SignalConfig",
    "evaluate_signals",
    "forward_returns",
    "generate_signals",
    "load_signal_config",
    "parse_horizons",
    "parse_signal_config",
]
