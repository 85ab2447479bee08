"""`generate_signals`: indicator frame in, signal frame out. Pure: no I/O, no clock, no settings.

The input holds one row per (coin_id, date) with `close` and the indicator columns (names of
docs/decisions.md (C-IND)). The output has one row per rule firing and one `composite` row per input row, in
the shape of the `trading_signals` table. A coin's previous row is its previous *stored* row (windows count
bars, docs/decisions.md#D4), and nothing after day t is read for day t: rows computed on a frame cut at t are the
same as rows computed on the whole history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from kallos.errors import DataValidationError
from kallos.signals.composite import ACTIONS
from kallos.signals.config import SignalConfig
from kallos.signals.kernel import evaluate
from kallos.signals.rules import RULE_IDS, required_columns

SIGNAL_COLUMNS: tuple[str, ...] = (
    "coin_id",
    "date",
    "signal",
    "direction",
    "strength",
    "composite_score",
    "action",
    "config_hash",
)
COMPOSITE = "composite"


def _sorted_codes(coins: pd.Series, dates: np.ndarray) -> np.ndarray | None:
    """Coin codes in row order if the rows are sorted by (coin_id, date) with no duplicate (coin, date), else
    None: one pass over the keys."""
    codes, uniques = pd.factorize(coins, sort=False)
    if len(codes) < 2:
        return codes
    if not (codes[1:] >= codes[:-1]).all() or not pd.Index(uniques).is_monotonic_increasing:
        return None
    same = codes[1:] == codes[:-1]
    return codes if bool((dates[1:][same] > dates[:-1][same]).all()) else None


def _prepare(frame: pd.DataFrame, config: SignalConfig) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The indicator frame typed and sorted by (coin_id, date), or one DataValidationError naming every problem
    found (docs/decisions.md#D45). Not copied or re-sorted when already sorted (the usual case, rows read from
    the store; copy-on-write shares the columns); then the rows' coin codes come back too."""
    missing = [c for c in required_columns(config) if c not in frame.columns]
    problems: list[DataValidationError] = []
    if missing:
        problems.append(
            DataValidationError("indicator frame lacks columns the enabled rules read", columns=missing)
        )
    if any(c in missing for c in ("coin_id", "date")):
        raise DataValidationError.of_problems("indicator frame", problems)
    df = frame.reset_index(drop=True)
    if df["date"].dtype != "datetime64[ns]":
        df["date"] = pd.to_datetime(df["date"]).astype("datetime64[ns]")
    codes = _sorted_codes(df["coin_id"], df["date"].to_numpy())
    if codes is None:
        dup = df.duplicated(["coin_id", "date"], keep=False)
        if dup.any():
            first = df.loc[dup].iloc[0]
            problems.append(
                DataValidationError(
                    "duplicate (coin_id, date) rows in the indicator frame",
                    coin_id=first["coin_id"],
                    date=str(first["date"].date()),
                    rows=int(dup.sum()),
                )
            )
    if "close" in df.columns and df["close"].isna().any():
        first = df.loc[df["close"].isna()].iloc[0]
        problems.append(
            DataValidationError("close is missing", coin_id=first["coin_id"], date=str(first["date"].date()))
        )
    if problems:
        raise DataValidationError.of_problems("indicator frame", problems)
    if codes is None:
        df = df.sort_values(["coin_id", "date"], kind="stable").reset_index(drop=True)
    return df, codes


_STRING = pd.StringDtype("pyarrow", na_value=np.nan)


def _strings(values: pa.Array) -> pd.api.extensions.ExtensionArray:
    """A string column straight from Arrow (no Python object per row)."""
    return pd.array(values, dtype=_STRING)


def empty_signal_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "coin_id": pd.Series(dtype=object),
            "date": pd.Series(dtype="datetime64[ns]"),
            "signal": pd.Series(dtype=object),
            "direction": pd.Series(dtype="int64"),
            "strength": pd.Series(dtype="float64"),
            "composite_score": pd.Series(dtype="float64"),
            "action": pd.Series(dtype=object),
            "config_hash": pd.Series(dtype=object),
        }
    )


def generate_signals(frame: pd.DataFrame, config: SignalConfig | None = None) -> pd.DataFrame:
    """Rule rows on the days each rule fires, and a composite row (score, action) for every input row."""
    config = config or SignalConfig()
    if frame.empty:
        return empty_signal_frame()
    df, codes = _prepare(frame, config)
    if codes is None:
        codes = pd.factorize(df["coin_id"], sort=False)[0]
    # One compiled pass evaluates every rule and the composite on each row and writes the output rows ordered
    # by (input row, signal name): docs/decisions.md#D119. rules.py states the same rules in pandas.
    names = sorted({*RULE_IDS, COMPOSITE})
    rows, ranks, directions, strengths, scores, actions = evaluate(df, codes, config, names)
    return pd.DataFrame(
        {
            "coin_id": _strings(pa.array(df["coin_id"]).take(rows)),
            "date": df["date"].to_numpy()[rows],
            "signal": _strings(pa.array(names, type=pa.large_string()).take(ranks)),
            "direction": directions,
            "strength": strengths,
            "composite_score": scores,
            "action": _strings(pa.array(ACTIONS, type=pa.large_string()).take(pa.array(actions, mask=actions < 0))),
            # One Arrow repeat: pandas would broadcast the scalar through Python strings.
            "config_hash": _strings(pa.repeat(pa.scalar(config.config_hash(), pa.large_string()), len(rows))),
        },
        copy=False,
    ).loc[:, list(SIGNAL_COLUMNS)]
