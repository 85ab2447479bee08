"""The compiled rule pass (docs/decisions.md#D119) against the rules as pandas expressions (`kallos.signals.rules`)
assembled row by row in plain Python: the same rows, strengths and scores, bit for bit, for many configs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.signals import RULE_IDS, SignalConfig, generate_signals, parse_signal_config
from kallos.signals.composite import ACTIONS, action_codes, composite_score
from kallos.signals.rules import Context, run_rules


def random_frame(seed: int, coins: int = 4, rows: int = 260) -> pd.DataFrame:
    """Random indicator values with warm-up NaNs, gaps, flat close runs, a one-row coin and crossings."""
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(coins):
        n = 1 if c == coins - 1 else rows
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
        if n > 60:
            close[20:45] = close[20]  # a frozen coin for a while
        def walk(scale: float, n: int = n) -> np.ndarray:
            return np.cumsum(rng.normal(0, scale, n))
        frame = pd.DataFrame(
            {
                "coin_id": f"coin-{c}",
                "date": pd.date_range("2021-01-01", periods=n),
                "close": close,
                "rsi_14": rng.uniform(0, 100, n),
                "macd_line": walk(0.5),
                "macd_signal": walk(0.5),
                "ema_10": close * (1 + rng.normal(0, 0.02, n)),
                "ema_50": close * (1 + rng.normal(0, 0.02, n)),
                "bb_upper": close * (1 + rng.normal(0.02, 0.03, n)),
                "bb_mid": close,
                "bb_lower": close * (1 - rng.normal(0.02, 0.03, n)),
                "stoch_k": rng.uniform(0, 100, n),
                "stoch_d": rng.uniform(0, 100, n),
                "volume_roc_7": rng.normal(0.3, 0.6, n),
                "cmf_20": rng.uniform(-0.5, 0.5, n),
                "adx_14": rng.uniform(0, 45, n),
            }
        )
        def some(share: float, n: int = n) -> np.ndarray:
            return rng.random(n) < share

        # Ties: every comparison of the rules meets its boundary somewhere (<= against <).
        frame.loc[some(0.05), "macd_signal"] = frame["macd_line"]
        frame.loc[some(0.05), "ema_50"] = frame["ema_10"]
        frame.loc[some(0.05), "stoch_d"] = frame["stoch_k"]
        frame.loc[some(0.04), "bb_upper"] = frame["close"]
        frame.loc[some(0.04), "bb_lower"] = frame["close"]
        frame.loc[some(0.03), "rsi_14"] = 30.0
        frame.loc[some(0.03), "rsi_14"] = 70.0
        frame.loc[some(0.04), "stoch_d"] = 20.0
        frame.loc[some(0.04), "adx_14"] = 20.0
        frame.loc[some(0.04), "volume_roc_7"] = 0.25
        frame.loc[some(0.04), "cmf_20"] = 0.05
        frame.loc[some(0.04), "cmf_20"] = -0.05
        for col in frame.columns[3:]:
            frame.loc[: int(rng.integers(0, 30)), col] = np.nan  # look-back
            frame.loc[rng.random(n) < 0.03, col] = np.nan  # gaps (close-only days, broken bars)
        frame.loc[rng.random(n) < 0.05, "bb_upper"] = frame["bb_lower"]  # zero band width
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def reference(frame: pd.DataFrame, config: SignalConfig) -> pd.DataFrame:
    """The rules evaluated as pandas expressions, and the output assembled row by row."""
    df = frame.sort_values(["coin_id", "date"]).reset_index(drop=True)
    results = run_rules(Context(df), config)
    score = composite_score(results, config, df.index).to_numpy()
    action = action_codes(score, config.composite)
    names = sorted({*RULE_IDS, "composite"})
    records = []
    for res in results:
        for f in res.firings:
            for i in np.flatnonzero(f.fires.to_numpy(dtype=bool)):
                records.append((i, names.index(f.rule), f.direction, f.strength.iloc[i], np.nan, None))
    for i in range(len(df)):
        records.append(
            (i, names.index("composite"), int(np.sign(score[i])), abs(score[i]), score[i], ACTIONS[action[i]])
        )
    records.sort(key=lambda r: (r[0], r[1]))
    return pd.DataFrame(
        {
            "coin_id": [df["coin_id"].iloc[r[0]] for r in records],
            "date": [df["date"].iloc[r[0]] for r in records],
            "signal": [names[r[1]] for r in records],
            "direction": [r[2] for r in records],
            "strength": [r[3] for r in records],
            "composite_score": [r[4] for r in records],
            "action": [r[5] for r in records],
        }
    )


def plain(values: pd.Series) -> list[object]:
    return [None if pd.isna(x) else x for x in values]


CONFIGS = [
    {},
    {"rules": {"bollinger": {"breakouts": False}, "volume": {"require_cmf": False, "min_cmf": 0.2}}},
    {"rules": {"bollinger": {"reentries": False, "weight": 0}, "rsi": {"enabled": False}}},
    {"adx_filter": {"enabled": False}, "rules": {"stochastic": {"oversold": 40, "overbought": 60}}},
    {"adx_filter": {"when_missing": "block", "gated_rules": ["macd", "ema_cross", "bollinger"], "min_adx": 25}},
    {"rules": {"macd": {"enabled": False}, "ema_cross": {"weight": 3, "full_strength": 0.05},
               "volume": {"enabled": False}}, "composite": {"buy_threshold": 0.05, "sell_threshold": -0.3}},
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(CONFIGS)))
def test_compiled_rules_equal_the_pandas_rules(case: int) -> None:
    config = parse_signal_config(CONFIGS[case])
    frame = random_frame(seed=case)
    got = generate_signals(frame.sample(frac=1.0, random_state=case), config)  # unsorted input too
    want = reference(frame, config)
    assert len(got) == len(want) > len(frame)
    assert set(got["signal"]) - {"composite"}, "no rule fired: the comparison would prove little"
    for col in ("coin_id", "signal", "action"):
        assert plain(got[col]) == plain(want[col]), col
    np.testing.assert_array_equal(got["date"].to_numpy(), want["date"].to_numpy().astype(got["date"].dtype))
    np.testing.assert_array_equal(got["direction"].to_numpy(), want["direction"].to_numpy())
    for col in ("strength", "composite_score"):  # bit for bit, NaN where the reference has NaN
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy().astype(float), err_msg=col)
