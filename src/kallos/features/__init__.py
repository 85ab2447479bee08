"""Model-ready features: one point-in-time frame of bars, indicators, signals, index membership, alternative data
and forward labels (docs/features.md).

    from kallos.features import load_features, time_splits
    frame = load_features(top=100, start="2021-01-01", naming="pandas-ta", horizons=(1, 7))
    for split in time_splits(frame, 5, horizon=7, embargo=7):
        train, test = frame[split.train_mask(frame["date"])], frame[split.test_mask(frame["date"])]
"""

from kallos.features.build import build_features
from kallos.features.frame import feature_columns, label_columns
from kallos.features.load import load_features
from kallos.features.naming import NAMINGS, PANDAS_TA
from kallos.features.splits import TimeSplit, time_splits

__all__ = [
    "NAMINGS",
    "PANDAS_TA",
    "TimeSplit",
    "build_features",
    "feature_columns",
    "label_columns",
    "load_features",
    "time_splits",
]
