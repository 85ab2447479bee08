"""Request parameters, checked before any query: a malformed value is a 422 naming the parameter.

Whether a well-formed coin or run exists is the data layer's question (404).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from kallos.store.schema import INDICATOR_COLUMNS
from kallos.web.data import DEFAULT_INDICATORS, TIMEFRAME_TABLES

_COIN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_RUN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.:-]{0,99}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REASON = re.compile(r"^[a-z0-9_]{1,64}$")


class BadParameter(ValueError):
    """A request parameter that cannot be right (HTTP 422)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def coin(value: str, name: str = "coin") -> str:
    if not _COIN.match(value):
        raise BadParameter(name, "a CoinGecko id: lower-case letters, digits, '.', '_' or '-'")
    return value


def run_id(value: str) -> str:
    if not _RUN.match(value):
        raise BadParameter("run_id", "not a run id")
    return value


def optional(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return value if value not in (None, "") else None


def date(query: Mapping[str, str], name: str) -> dt.date | None:
    value = optional(query, name)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadParameter(name, f"{value[:40]!r} is not a date (YYYY-MM-DD)") from None


def date_range(query: Mapping[str, str]) -> tuple[dt.date | None, dt.date | None]:
    start, end = date(query, "start"), date(query, "end")
    if start and end and start > end:
        raise BadParameter("start", "start is after end")
    return start, end


def timeframe(query: Mapping[str, str]) -> str:
    value = optional(query, "tf") or "daily"
    if value not in TIMEFRAME_TABLES:
        raise BadParameter("tf", f"one of {', '.join(TIMEFRAME_TABLES)}")
    return value


def indicators(query: Mapping[str, str]) -> tuple[str, ...]:
    value = query.get("ind")
    if value is None:
        return DEFAULT_INDICATORS
    chosen = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in chosen if v not in INDICATOR_COLUMNS]
    if unknown:
        raise BadParameter("ind", f"unknown indicator(s) {', '.join(u[:40] for u in unknown[:5])}")
    if len(chosen) > 6:
        raise BadParameter("ind", "at most 6 indicators at once")
    return chosen


def reason(query: Mapping[str, str]) -> str | None:
    value = optional(query, "reason")
    if value is not None and not _REASON.match(value):
        raise BadParameter("reason", "a reason code: lower-case letters, digits and '_'")
    return value


def optional_coin(query: Mapping[str, str]) -> str | None:
    value = optional(query, "coin")
    return coin(value) if value is not None else None


def index_name(query: Mapping[str, str]) -> str | None:
    value = optional(query, "name")
    if value is not None and not _NAME.match(value):
        raise BadParameter("name", "an index name: letters, digits, '.', '_' or '-'")
    return value
