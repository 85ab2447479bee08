"""Alternative data over time (docs/decisions.md#D78): one `coin_details_history` row per coin and day from a
`/coins/{id}` answer (every details refresh) or a `/coins/{id}/history` snapshot (the backfill)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from kallos.store.schema import ALT_COMMUNITY_COLUMNS, ALT_DATA_COLUMNS, ALT_DEVELOPER_COLUMNS, ALT_TOP_COLUMNS


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def snapshot_day(fetched_at: dt.datetime) -> dt.date:
    """The day a value fetched at `fetched_at` is known for: the first daily bar at or after it. Bar D is the
    00:00 UTC snapshot of D (docs/decisions.md#D2), so a refresh at 15:00 on D is dated D + 1, never before the
    bars it could not have been known at."""
    day = fetched_at.astimezone(dt.UTC)
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return day.date() if day == midnight else day.date() + dt.timedelta(days=1)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def alt_row(
    payload: Mapping[str, Any], coin: str, day: dt.date, *, source: str, fetched_at: dt.datetime
) -> dict[str, Any] | None:
    """The history row of one answer, or None when it carries none of the metrics (nothing to remember)."""
    dev, com = _mapping(payload.get("developer_data")), _mapping(payload.get("community_data"))
    code = _mapping(dev.get("code_additions_deletions_4_weeks"))
    values: dict[str, float | None] = {name: _number(dev.get(name)) for name in ALT_DEVELOPER_COLUMNS}
    values["code_additions_4_weeks"] = _number(code.get("additions"))
    values["code_deletions_4_weeks"] = _number(code.get("deletions"))
    values.update({name: _number(com.get(name)) for name in ALT_COMMUNITY_COLUMNS})
    values.update({name: _number(payload.get(name)) for name in ALT_TOP_COLUMNS})
    if all(v is None for v in values.values()):
        return None
    return {
        "coin_id": coin,
        "date": day,
        "source": source,
        "fetched_at": fetched_at,
        **{name: values[name] for name in ALT_DATA_COLUMNS},
    }
