"""The plain progress reporter used when stderr is not a terminal (docs/decisions.md#D40)."""

from __future__ import annotations

import io

from kallos.pipeline.contract import NullProgress
from kallos.pipeline.progress import LineProgress, as_progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_one_line_every_interval_and_a_last_line():
    out, clock = io.StringIO(), FakeClock()
    p = LineProgress(out, interval=5.0, clock=clock)
    p.start("backfill", total=10)
    for _ in range(3):
        clock.t += 1.0
        p.advance()
    assert out.getvalue() == ""  # nothing before the interval has passed
    clock.t += 3.0
    p.advance()
    assert out.getvalue() == "backfill: 4/10 (40%), 6 s elapsed\n"
    clock.t += 1.0
    p.advance(6)
    p.finish()
    assert out.getvalue().splitlines()[-1] == "backfill: 10/10 (100%), 7 s elapsed"


def test_a_short_task_prints_nothing():
    out, clock = io.StringIO(), FakeClock()
    p = LineProgress(out, clock=clock)
    p.start("update")
    p.advance(3)
    p.finish()
    assert out.getvalue() == ""
    assert p.line() == "update: 3, 0 s elapsed"  # no total: the count alone


def test_as_progress():
    assert isinstance(as_progress(False), NullProgress) and isinstance(as_progress(None), NullProgress)
    assert isinstance(as_progress(True), LineProgress)
    mine = LineProgress()
    assert as_progress(mine) is mine
