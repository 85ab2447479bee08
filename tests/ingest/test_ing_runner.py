"""The per-coin runner: expected errors fail one coin, a bug propagates (docs/decisions.md#D39)."""

from __future__ import annotations

import asyncio

import pytest

from kallos.errors import NotFoundError
from kallos.ingest.runner import RunCounts, run_per_coin


def test_an_expected_error_fails_one_coin(duck_store):
    async def job(coin: str):
        if coin == "ghost":
            raise NotFoundError("coin not found", endpoint="/coins/{id}", status=404, coin_id=coin)
        return None  # up to date

    counts = RunCounts()
    asyncio.run(run_per_coin(duck_store, ["bitcoin", "ghost", "ethereum"], job, counts))
    assert set(counts.failed) == {"ghost"} and counts.coins == 2
    outcome = counts.outcome()
    assert outcome.status == "partial" and outcome.coins_ok == 2 and "not found" in outcome.failures["ghost"]


@pytest.mark.parametrize("bug", [ValueError("bad literal"), KeyError("close"), TypeError("oops")])
def test_a_bug_is_not_counted_as_a_coin_failure(duck_store, bug):
    async def job(coin: str):
        raise bug

    with pytest.raises(type(bug)):
        asyncio.run(run_per_coin(duck_store, ["bitcoin"], job, RunCounts()))
