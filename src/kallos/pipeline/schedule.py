"""When the periodic steps are due: the universe weekly, coin details when stale, an index when a final day
or a changed input is new.

Pure functions of dates (the ledger and the store supply them), so the rules are tested without a database.
"""

from __future__ import annotations

import datetime as dt

UNIVERSE_MAX_AGE = dt.timedelta(days=7)


def universe_due(
    today: dt.date, last_success: dt.datetime | None, *, has_coins: bool = True
) -> tuple[bool, str]:
    """The coin list is synced on Mondays, or when the last successful sync is 7 or more days old."""
    if not has_coins:
        return True, "no coins stored yet"
    if last_success is None:
        return True, "never synced"
    if today.weekday() == 0 and last_success.date() < today:
        return True, "Monday"
    age = dt.datetime.combine(today, dt.time(), dt.UTC) - last_success.astimezone(dt.UTC)
    if age >= UNIVERSE_MAX_AGE:
        return True, f"last sync {age.days} days ago"
    return False, f"synced {last_success.date().isoformat()}; next on Monday or after 7 days"


def month_end_on_or_before(day: dt.date) -> dt.date:
    """The last month end on or before `day` (`day` itself when it is one)."""
    if (day + dt.timedelta(days=1)).month != day.month:
        return day
    return day.replace(day=1) - dt.timedelta(days=1)


def index_due(
    last_final_day: dt.date | None, built_through: dt.date | None, dirty_from: dt.date | None = None
) -> tuple[bool, str]:
    """An index is due when a newer final day is stored, when stored inputs changed since it was built (a mark
    from market-data writes, docs/decisions.md#D61), or when it was never built.

    `last_final_day` is the newest stored final market day; `built_through` the last day the index was valued
    through (None before the first build); `dirty_from` the earliest changed date not yet rebuilt.
    """
    if last_final_day is None:
        return False, "no market data stored"
    if built_through is None:
        return True, f"not built yet; data through {last_final_day.isoformat()}"
    if dirty_from is not None:
        month = dirty_from.replace(day=1).isoformat()
        return True, f"inputs changed from {dirty_from.isoformat()}: the months from {month} are rebuilt"
    if last_final_day > built_through:
        return True, f"day(s) through {last_final_day.isoformat()} not valued yet"
    return False, f"built through {built_through.isoformat()}; nothing changed since"
