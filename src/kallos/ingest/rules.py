"""The data-quality rule table: every check on daily market rows, declared once (docs/decisions.md#D44).

Each :class:`Rule` names the field its event carries, its reason code, its action and a vectorised check (a
boolean mask over the rows of a prepared frame). The per-coin validation and the sweep validation in
:mod:`kallos.ingest.validation` both apply this table, stage by stage:

    timestamp  on every row: unreadable or off-midnight timestamps
    close      on rows with a readable timestamp: a row without a usable close is quarantined
    values     on the rows that remain: market cap, volume, candles, jumps, pegs

Within a stage every rule sees the same rows, so two rules can name one row (a ``-inf`` market cap is both
negative and non-finite); the actions are applied after the whole stage is judged. A rule whose ``needs`` a
column the source did not send is skipped (a CSV without market caps reports no missing market caps).

What only a coin's series of rows has (order, duplicate dates, missing calendar days) is in
:data:`SERIES_RULES` and applied by the per-coin validation alone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "DEDUPLICATED",
    "FLAGGED",
    "FLOORED",
    "MISSING_DAY",
    "NULLED",
    "OHLC",
    "QUARANTINED",
    "RULES",
    "SERIES_RULES",
    "STAGES",
    "EventKind",
    "Limits",
    "Rule",
    "rules_for",
]

QUARANTINED = "quarantined"  # the row is not loaded
NULLED = "nulled"  # the value is stored as NULL
FLOORED = "floored"  # the timestamp is stored as its UTC date
DEDUPLICATED = "deduplicated"  # an earlier row of the same date is dropped
FLAGGED = "flagged"  # kept as it is, but suspicious

OHLC = ("open", "high", "low")
STAGES = ("timestamp", "close", "values")

Mask = npt.NDArray[np.bool_]
Positions = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Limits:
    """The thresholds the checks use (the defaults are the documented ones, docs/decisions.md#D7)."""

    jump_factor: float = 3.0  # a one-day move above x3 or below x1/3 is a price jump
    peg_tolerance: float = 0.05  # a stablecoin more than 5% from 1 is off its peg
    ohlc_rtol: float = 1e-9  # relative slack when a candle must bracket the chart close


@dataclass(frozen=True)
class Rule:
    """One data-quality rule.

    ``check(rows, limits)`` reads a prepared frame (numeric value columns as float64, ``snapped_at`` as UTC
    timestamps with NaT where unreadable, ``date`` the naive UTC day; the ``values`` stage also has
    ``prev_close`` and ``stablecoin``) and returns where the rule holds. ``detail(rows, limits, hits)`` words the
    event of each hit (called only for hits, so its per-event formatting costs nothing on clean data).
    """

    stage: str
    field: str
    reason: str
    action: str
    check: Callable[[pd.DataFrame, Limits], Mask]
    needs: tuple[str, ...] = ()
    detail: Callable[[pd.DataFrame, Limits, Positions], list[str]] | None = None

    @property
    def nulls(self) -> tuple[str, ...]:
        """The columns a ``nulled`` rule sets to NULL."""
        if self.action != NULLED:
            return ()
        return OHLC if self.field == "ohlc" else (self.field,)

    def applies_to(self, columns: Collection[str]) -> bool:
        return all(c in columns for c in self.needs)


def rules_for(stage: str, columns: Collection[str]) -> list[Rule]:
    """The rules of one stage that apply to a source sending `columns`, in table order."""
    return [r for r in RULES if r.stage == stage and r.applies_to(columns)]


def _values(rows: pd.DataFrame, name: str) -> npt.NDArray[np.float64]:
    return rows[name].to_numpy(dtype="float64")


# --- timestamps ---------------------------------------------------------------------------------------------


def _unreadable(rows: pd.DataFrame, limits: Limits) -> Mask:
    return rows["snapped_at"].isna().to_numpy()


def _off_midnight(rows: pd.DataFrame, limits: Limits) -> Mask:
    ts = rows["snapped_at"]
    return (ts.notna() & (ts != ts.dt.floor("D"))).to_numpy()


def _snapped_at(rows: pd.DataFrame, limits: Limits, hits: Positions) -> list[str]:
    return [f"snapped at {t.isoformat()}" for t in rows["snapped_at"].iloc[hits]]


# --- close ------------------------------------------------------------------------------------------------


def _null_close(rows: pd.DataFrame, limits: Limits) -> Mask:
    return np.isnan(_values(rows, "close"))


def _non_finite(name: str) -> Callable[[pd.DataFrame, Limits], Mask]:
    def check(rows: pd.DataFrame, limits: Limits) -> Mask:
        return np.isinf(_values(rows, name))

    return check


def _non_positive_close(rows: pd.DataFrame, limits: Limits) -> Mask:
    close = _values(rows, "close")
    return np.isfinite(close) & (close <= 0)


# --- market cap and volume --------------------------------------------------------------------------------


def _zero(name: str) -> Callable[[pd.DataFrame, Limits], Mask]:
    def check(rows: pd.DataFrame, limits: Limits) -> Mask:
        return _values(rows, name) == 0

    return check


def _missing(name: str) -> Callable[[pd.DataFrame, Limits], Mask]:
    def check(rows: pd.DataFrame, limits: Limits) -> Mask:
        return np.isnan(_values(rows, name))

    return check


def _negative(name: str) -> Callable[[pd.DataFrame, Limits], Mask]:
    def check(rows: pd.DataFrame, limits: Limits) -> Mask:
        with np.errstate(invalid="ignore"):
            return _values(rows, name) < 0

    return check


# --- candles: open/high/low must bracket the chart close (whose value is kept) -----------------------------


def _candle_state(rows: pd.DataFrame) -> tuple[npt.NDArray[np.float64], Mask, Mask, Mask]:
    """(open/high/low as columns, incomplete, non-positive, usable): each candle column read once for the three
    candle rules, which are nested (a non-positive candle is a complete one, a broken relation a usable one)."""
    parts = np.column_stack([_values(rows, c) for c in OHLC])
    given = ~np.isnan(parts).all(axis=1)
    incomplete = given & ~np.isfinite(parts).all(axis=1)
    with np.errstate(invalid="ignore"):
        non_positive = given & ~incomplete & (parts <= 0).any(axis=1)
    usable = given & ~incomplete & ~non_positive
    return parts, np.asarray(incomplete), np.asarray(non_positive), np.asarray(usable)


def _candle_incomplete(rows: pd.DataFrame, limits: Limits) -> Mask:
    return _candle_state(rows)[1]


def _candle_non_positive(rows: pd.DataFrame, limits: Limits) -> Mask:
    return _candle_state(rows)[2]


def _candle_relation(rows: pd.DataFrame, limits: Limits) -> Mask:
    parts, _, _, usable = _candle_state(rows)
    o, h, lo = parts[:, 0], parts[:, 1], parts[:, 2]
    c = _values(rows, "close")
    tol = limits.ohlc_rtol * np.abs(c)
    with np.errstate(invalid="ignore"):
        broken = (h < np.maximum(o, c) - tol) | (lo > np.minimum(o, c) + tol) | (h < lo - tol)
    return usable & broken


def _candle(rows: pd.DataFrame, limits: Limits, hits: Positions) -> list[str]:
    o, h, lo, c = (_values(rows, n)[hits] for n in ("open", "high", "low", "close"))
    return [f"open={a} high={b} low={d} close={e}" for a, b, d, e in zip(o, h, lo, c, strict=True)]


# --- moves and pegs, judged against the previous close of the same coin -----------------------------------


def _ratio(rows: pd.DataFrame) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # a 1e-300 close makes inf: a jump
        ratio: npt.NDArray[np.float64] = _values(rows, "close") / _values(rows, "prev_close")
    return ratio


def _price_jump(rows: pd.DataFrame, limits: Limits) -> Mask:
    ratio = _ratio(rows)
    with np.errstate(invalid="ignore"):
        return (ratio > limits.jump_factor) | (ratio < 1.0 / limits.jump_factor)


def _jump(rows: pd.DataFrame, limits: Limits, hits: Positions) -> list[str]:
    ratio, prev = _ratio(rows)[hits], _values(rows, "prev_close")[hits]
    return [f"x{r:.4g} vs the previous close {p:.10g}" for r, p in zip(ratio, prev, strict=True)]


def _off_peg(rows: pd.DataFrame, limits: Limits) -> Mask:
    with np.errstate(invalid="ignore"):
        return rows["stablecoin"].to_numpy(dtype=bool) & (np.abs(_values(rows, "close") - 1.0) > limits.peg_tolerance)


def _peg(rows: pd.DataFrame, limits: Limits, hits: Positions) -> list[str]:
    return [f"close {c:.6g} is more than {limits.peg_tolerance:.0%} from 1" for c in _values(rows, "close")[hits]]


RULES: tuple[Rule, ...] = (
    Rule("timestamp", "row", "unparseable_timestamp", QUARANTINED, _unreadable),
    Rule("timestamp", "date", "off_midnight", FLOORED, _off_midnight, detail=_snapped_at),
    Rule("close", "row", "null_close", QUARANTINED, _null_close),
    Rule("close", "row", "non_finite_close", QUARANTINED, _non_finite("close")),
    Rule("close", "row", "non_positive_close", QUARANTINED, _non_positive_close),
    Rule("values", "market_cap", "zero_market_cap", NULLED, _zero("market_cap"), ("market_cap",)),
    Rule("values", "market_cap", "missing_market_cap", NULLED, _missing("market_cap"), ("market_cap",)),
    Rule("values", "market_cap", "negative_market_cap", NULLED, _negative("market_cap"), ("market_cap",)),
    Rule("values", "market_cap", "non_finite_market_cap", NULLED, _non_finite("market_cap"), ("market_cap",)),
    Rule("values", "volume", "negative_volume", NULLED, _negative("volume"), ("volume",)),
    Rule("values", "volume", "non_finite_volume", NULLED, _non_finite("volume"), ("volume",)),
    Rule("values", "volume", "zero_volume", FLAGGED, _zero("volume"), ("volume",)),
    Rule("values", "volume", "missing_volume", FLAGGED, _missing("volume"), ("volume",)),
    Rule("values", "ohlc", "incomplete_ohlc", NULLED, _candle_incomplete, OHLC, _candle),
    Rule("values", "ohlc", "non_positive_ohlc", NULLED, _candle_non_positive, OHLC, _candle),
    Rule("values", "ohlc", "ohlc_relation", NULLED, _candle_relation, OHLC, _candle),
    Rule("values", "close", "price_jump", FLAGGED, _price_jump, detail=_jump),
    Rule("values", "close", "off_peg", FLAGGED, _off_peg, detail=_peg),
)


# --- the rules only a coin's series of rows has ------------------------------------------------------------


def _out_of_order(rows: pd.DataFrame, limits: Limits) -> Mask:
    ts = rows["snapped_at"]
    return (ts < ts.cummax()).to_numpy()


def _duplicate_date(rows: pd.DataFrame, limits: Limits) -> Mask:
    return rows["date"].duplicated(keep="last").to_numpy()


SERIES_RULES: dict[str, Rule] = {
    # A row earlier than one before it: the batch is sorted by time (stable, so the last of equal times wins).
    "out_of_order": Rule("order", "row", "out_of_order", FLAGGED, _out_of_order),
    # Several rows of one date: the last one of the (sorted) batch wins.
    "duplicate_date": Rule("duplicates", "row", "duplicate_date", DEDUPLICATED, _duplicate_date),
}


class EventKind(NamedTuple):
    field: str
    reason: str
    action: str


# A calendar day absent between two rows (or after the stored day before the batch): no row to mask, so no check;
# the per-coin validation lists the days (validation.missing_days).
MISSING_DAY = EventKind("row", "missing_day", FLAGGED)
