"""`generate_signals`: indicator frame in, signal frame out. Pure: no I/O, no clock, no settings.

The input holds one row per (coin_id, date) with `close` and the indicator columns (names of
shared/docs/indicators.md). The output has one row per rule firing and one `composite` row per input row, in
the shape of the `trading_signals` table. A coin's previous row is its previous *stored* row (windows count
bars, decisions.md #4), and nothing after day t is read for day t: rows computed on a frame cut at t are the
same as rows computed on the whole history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.errors import DataValidationError
from kallos.signals.composite import action_of, composite_score
from kallos.signals.config import SignalConfig
from kallos.signals.rules import Context, required_columns, run_rules

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


def _prepare(frame: pd.DataFrame, config: SignalConfig) -> pd.DataFrame:
    """The indicator frame typed and sorted, or one DataValidationError naming every problem found
    (docs/decisions.md#D45)."""
    missing = [c for c in required_columns(config) if c not in frame.columns]
    problems: list[DataValidationError] = []
    if missing:
        problems.append(
            DataValidationError("indicator frame lacks columns the enabled rules read", columns=missing)
        )
    if any(c in missing for c in ("coin_id", "date")):
        raise DataValidationError.of_problems("indicator frame", problems)
    df = frame.copy()
    df["date"] = pd.to_datetime(df["date"]).astype("datetime64[ns]")
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
    return df.sort_values(["coin_id", "date"], kind="stable").reset_index(drop=True)


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
    df = _prepare(frame, config)
    ctx = Context(df)
    results = run_rules(ctx, config)
    chash = config.config_hash()

    parts = []
    for res in results:
        for f in res.firings:
            hit = f.fires.to_numpy(dtype=bool)
            if not hit.any():
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "coin_id": df["coin_id"].to_numpy()[hit],
                        "date": df["date"].to_numpy()[hit],
                        "signal": f.rule,
                        "direction": f.direction,
                        "strength": f.strength.to_numpy(dtype=float)[hit],
                        "composite_score": np.nan,
                        "action": None,
                    }
                )
            )
    score = composite_score(results, config, df.index)
    parts.append(
        pd.DataFrame(
            {
                "coin_id": df["coin_id"].to_numpy(),
                "date": df["date"].to_numpy(),
                "signal": COMPOSITE,
                "direction": np.sign(score.to_numpy()).astype("int64"),
                "strength": score.abs().to_numpy(),
                "composite_score": score.to_numpy(),
                "action": action_of(score, config.composite).to_numpy(),
            }
        )
    )
    out = pd.concat(parts, ignore_index=True)
    out["config_hash"] = chash
    out["direction"] = out["direction"].astype("int64")
    out["action"] = out["action"].astype(object).where(out["action"].notna(), None)
    return (
        out.sort_values(["coin_id", "date", "signal"], kind="stable")
        .reset_index(drop=True)
        .loc[:, list(SIGNAL_COLUMNS)]
    )
