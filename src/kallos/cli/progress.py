"""The CLI's progress reporters: a rich bar on a terminal, plain lines every few seconds otherwise.

Steps report through the :class:`~kallos.pipeline.contract.Progress` interface they get in their context; only
this module knows about rich (docs/decisions.md#D40).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar

from kallos.cli.common import err_console
from kallos.pipeline.contract import NullProgress, Progress
from kallos.pipeline.progress import LineProgress


class BarProgress:
    """A rich progress bar on stderr, one per task (started by `start`, removed by `finish`)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bar: RichBar | None = None
        self._task: TaskID | None = None

    def start(self, label: str, total: int | None = None) -> None:
        self.finish()
        if total == 0:
            return
        self._bar = RichBar(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task = None, None


def progress_for(enabled: bool | None) -> Progress:
    """`--progress/--no-progress`: off -> nothing; a terminal -> a bar; a pipe or file -> plain lines."""
    if enabled is False:
        return NullProgress()
    if err_console.is_terminal:
        return BarProgress(err_console)
    return LineProgress()
