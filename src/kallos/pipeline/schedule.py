"""When the periodic steps are due: the universe weekly, coin details when stale, the index at month ends.

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


def index_due(last_data_day: dt.date | None, last_built_month_end: dt.date | None) -> tuple[bool, str]:
    """The index is built for every month that has ended in the stored data and is not built yet.

    `last_data_day` is the newest stored market day; `last_built_month_end` the newest month end whose daily
    index
    values are stored (None before the first build).
    """
    if last_data_day is None:
        return False, "no market data stored"
    ended = month_end_on_or_before(last_data_day)
    if last_built_month_end is None:
        return True, f"not built yet; months ended through {ended.isoformat()}"
    if ended > last_built_month_end:
        return True, f"month(s) through {ended.isoformat()} not built yet"
    return False, f"built through {last_built_month_end.isoformat()}; the next month has not ended"
