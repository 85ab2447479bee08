"""A progress reporter for output that is not a terminal (cron mail, log files, pipes): plain lines.

A bar drawn into a file is either nothing or a flood of control characters, so when nobody watches a terminal
the long steps print one line every `interval` seconds instead (docs/decisions.md#D40):
``backfill: 120/500 (24%), 35 s elapsed``. The rich bar for terminals lives in the CLI; this module imports
neither the CLI nor rich.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from kallos.pipeline.contract import NullProgress, Progress

DEFAULT_INTERVAL = 5.0


class LineProgress:
    """Prints `label: done/total (pct), N s elapsed` at most once per `interval` seconds, and a last line
    when a task that printed anything finishes (so the log shows where it ended)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.label = ""
        self.total: int | None = None
        self.done = 0
        self._started = 0.0
        self._last = 0.0
        self._printed = False

    def start(self, label: str, total: int | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self._started = self._last = self.clock()
        self._printed = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.clock() - self._last >= self.interval:
            self._print()

    def finish(self) -> None:
        if self._printed:
            self._print()

    def line(self) -> str:
        elapsed = self.clock() - self._started
        if self.total:
            shown = f"{self.done}/{self.total} ({self.done / self.total:.0%})"
        else:
            shown = str(self.done)
        return f"{self.label}: {shown}, {elapsed:.0f} s elapsed"

    def _print(self) -> None:
        stream = self.stream or sys.stderr
        print(self.line(), file=stream, flush=True)
        self._last = self.clock()
        self._printed = True


def as_progress(value: bool | Progress | None) -> Progress:
    """The reporter for the Python functions' `progress=` argument: True prints plain lines on stderr."""
    if value is None or value is False:
        return NullProgress()
    if value is True:
        return LineProgress()
    return value
