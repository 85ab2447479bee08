"""The injectable clock (docs/decisions.md#D3): `KALLOS_NOW` / `--now` make "today" deterministic."""

from __future__ import annotations

import datetime as dt

_override: dt.datetime | None = None


def set_now(value: dt.datetime | None) -> None:
    """Pin "now" for this process (the CLI does it from settings; tests and the demo from the fake server)."""
    global _override
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    _override = value.astimezone(dt.UTC) if value is not None else None


def utcnow() -> dt.datetime:
    return _override if _override is not None else dt.datetime.now(dt.UTC)


def today() -> dt.date:
    return utcnow().date()


def last_final_day(
    now: dt.datetime | None = None, *, publish_delay: dt.timedelta = dt.timedelta(minutes=35)
) -> dt.date:
    """The newest UTC day whose 00:00 point is published (docs/decisions.md#D2: day D is final at about 00:35 on D)."""
    now = now or utcnow()
    return (now - publish_delay).date()
