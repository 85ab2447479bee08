"""Replays after a reconnect are dropped: per coin, only updates newer than the last one accepted pass."""

from __future__ import annotations

from collections.abc import Mapping

from kallos.stream.protocol import PriceUpdate


class ReplayFilter:
    """Keeps the newest update time per coin. Seeded from the store at start, so a restarted stream does not store
    again what an earlier process stored. Each coin is on exactly one socket, so its updates arrive in order and
    "newer than the last" is the exact de-duplication rule (docs/decisions.md#D102)."""

    def __init__(self, last_seen: Mapping[str, int] | None = None) -> None:
        self._last: dict[str, int] = dict(last_seen or {})
        self.replays = 0

    def accept(self, update: PriceUpdate) -> bool:
        last = self._last.get(update.coin_id)
        if last is not None and update.ts_us <= last:
            self.replays += 1
            return False
        self._last[update.coin_id] = update.ts_us
        return True

    def last_seen(self, coin_id: str) -> int | None:
        return self._last.get(coin_id)
