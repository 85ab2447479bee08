"""The capacity-1 bucket: never more than R slots in any 60 s window, shared through its state file."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from filelock import FileLock

from kallos.coingecko.ratelimit import RateLimiter, bucket_id
from kallos.errors import ConfigError
from kallos.fake import FakeClock


def FakeTime() -> FakeClock:  # noqa: N802 - reads as the class it was
    """Virtual time: sleepers wake in order of their deadlines, the clock jumping to each deadline."""
    return FakeClock(start=1_000_000.0)


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def _run(limiters: list[RateLimiter], calls_each: int, ft: FakeClock) -> list[float]:
    sent: list[float] = []

    async def worker(lim: RateLimiter) -> None:
        for _ in range(calls_each):
            await lim.acquire()
            sent.append(ft.now)

    await asyncio.gather(*(worker(lim) for lim in limiters for _ in range(4)))
    return sent


def test_never_more_than_r_in_any_minute_and_no_burst(tmp_path: Path) -> None:
    ft = FakeTime()
    lim = RateLimiter(120, clock=ft.time, sleep=ft.sleep)
    sent = asyncio.run(_run([lim], 100, ft))
    assert len(sent) == 400
    assert _max_in_window(sent, 60.0) <= 120
    assert _max_in_window(sent, 0.49) == 1  # capacity 1: slots at least 60.5/120 s apart
    span_minutes = (max(sent) - min(sent)) / 60
    assert (len(sent) - 1) / span_minutes == pytest.approx(120 * 60 / 60.5, rel=1e-6)


def test_two_limiters_sharing_a_state_file_split_the_rate(tmp_path: Path) -> None:
    ft = FakeTime()
    a = RateLimiter.shared(
        60, host="http://h/api/v3", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep
    )
    b = RateLimiter.shared(
        60, host="http://h/api/v3", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep
    )
    assert a.state_path == b.state_path
    sent = asyncio.run(_run([a, b], 30, ft))
    assert _max_in_window(sent, 60.0) <= 60
    other = RateLimiter.shared(60, host="http://h/api/v3", api_key="k2", state_dir=tmp_path)
    assert other.state_path != a.state_path
    assert "k" not in a.state_path.name.replace(bucket_id("http://h/api/v3", "k"), "")  # type: ignore[union-attr]


def test_penalty_delays_every_sharer(tmp_path: Path) -> None:
    ft = FakeTime()
    a = RateLimiter.shared(6000, host="h", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep)
    b = RateLimiter.shared(6000, host="h", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep)
    start = ft.now
    a.penalize(30.0)

    asyncio.run(b.acquire())
    assert ft.now - start >= 30.0


def test_unlimited_and_invalid_rates() -> None:
    ft = FakeTime()
    lim = RateLimiter(math.inf, clock=ft.time, sleep=ft.sleep)
    asyncio.run(_run([lim], 50, ft))
    assert ft.now == 1_000_000.0
    with pytest.raises(ConfigError, match="KALLOS_RATE_LIMIT_PER_MINUTE"):
        RateLimiter(0)


def test_unwritable_state_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="KALLOS_RATE_LIMIT_DIR"):
        RateLimiter.shared(60, host="h", api_key="k", state_dir=blocker / "sub")


def test_corrupt_state_file_is_survived(tmp_path: Path) -> None:
    lim = RateLimiter.shared(600, host="h", api_key=None, state_dir=tmp_path)
    assert lim.state_path is not None
    lim.state_path.write_text("{not json")
    asyncio.run(lim.acquire())
    assert "next_at" in lim.state_path.read_text()


def test_a_lock_held_elsewhere_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """Another process's lock on the bucket: the wait for it runs off the event loop, which keeps serving."""
    lim = RateLimiter.shared(600, host="h", api_key="k", state_dir=tmp_path)
    assert lim.state_path is not None
    other = FileLock(str(lim.state_path) + ".lock")  # another holder (its own file descriptor)

    async def go() -> tuple[int, bool]:
        ticks = 0
        with other:
            waiter = asyncio.create_task(lim.acquire())
            for _ in range(10):
                await asyncio.sleep(0.01)
                ticks += 1
            held = not waiter.done()
        await waiter
        return ticks, held

    ticks, held = asyncio.run(go())
    assert held and ticks == 10  # the loop ran while the slot waited for the lock
    assert "next_at" in lim.state_path.read_text()


def test_an_async_penalty_pauses_the_shared_bucket(tmp_path: Path) -> None:
    ft = FakeTime()
    a = RateLimiter.shared(6000, host="h", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep)
    b = RateLimiter.shared(6000, host="h", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep)

    async def go() -> float:
        await a.apenalize(12.0)
        return await b.acquire()

    assert asyncio.run(go()) == pytest.approx(12.0)


def test_a_very_slow_rate_is_honoured_not_reset(tmp_path: Path) -> None:
    """Issue 13 #5: 0.01 calls/min sent 6 calls in a second (the queue was taken for a clock jump)."""
    ft = FakeTime()
    lim = RateLimiter.shared(0.01, host="h", api_key="k", state_dir=tmp_path, clock=ft.time, sleep=ft.sleep)
    sent = asyncio.run(_run([lim], 2, ft))  # 4 concurrent callers, 8 calls
    gaps = [b - a for a, b in zip(sorted(sent), sorted(sent)[1:], strict=False)]
    assert len(sent) == 8 and min(gaps) >= 6000.0  # one call per 100 minutes (plus the 0.8 % guard)
