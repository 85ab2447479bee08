import asyncio
import datetime as dt
import json

import pytest

from kallos.errors import UnknownCoinError
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.pipeline.ledger import Ledger
from kallos.pipeline.ledger import run_steps as ledger_steps
from kallos.pipeline.runner import RunSummary, Step, StepResult, run_status, run_steps
from kallos.settings import load_settings


def _run(store, steps):
    ledger = Ledger(store, "test")
    ledger.start_run()
    ctx = StepContext(
        store=store, settings=load_settings(), run_id=ledger.run_id, now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    return ledger, asyncio.run(run_steps(steps, ledger, ctx))


def test_a_failing_step_is_recorded_and_independent_steps_go_on(duck_store):
    async def market(ctx):
        return StepOutcome(status="partial", coins_ok=1, rows_written=5, failures={"ghost": "not found"})

    def boom(ctx):
        raise UnknownCoinError("1 coin(s) not in the coins table", table="daily_market_data", coins=["ghost"])

    def later(ctx):
        return StepOutcome(rows_written=2)

    ledger, results = _run(
        duck_store,
        [
            Step("market", market),
            Step("indicators", boom, requires=("market",)),
            Step("signals", later, requires=("indicators",)),
            Step("index", later, requires=("market",)),
            Step("universe", later, skip_reason="not due: synced yesterday"),
        ],
    )
    status = {r.name: r.status for r in results}
    assert status == {
        "market": "partial",
        "indicators": "failed",
        "signals": "skipped",
        "index": "success",
        "universe": "skipped",
    }
    assert results[0].failed == {"ghost": "not found"}
    assert "not in the coins table" in results[1].error
    assert "indicators failed" in results[2].outcome.reason
    recorded = ledger_steps(duck_store, ledger.run_id).set_index("step")
    assert recorded.loc["indicators", "status"] == "failed"
    assert "ghost" in recorded.loc["market", "error"]
    # the ledger stores the outcome's fields, not a step's own names for them
    stored = json.loads(recorded.loc["market", "counts"])
    assert stored["rows_written"] == 5 and stored["failures"] == {"ghost": "not found"}
    assert run_status(results) == "partial"


def _result(name, status):
    return StepResult(name, StepOutcome(status=status))


def test_run_status_maps_to_exit_codes():
    ok, part, bad, skip = (_result("a", s) for s in ("success", "partial", "failed", "skipped"))
    assert run_status([ok, skip]) == "success"
    assert run_status([skip]) == "success"
    assert run_status([ok, part]) == "partial"
    assert run_status([ok, bad]) == "partial"
    assert run_status([bad, skip, bad]) == "failed"
    assert run_status([ok, _result("market", "failed")]) == "failed"
    assert run_status([ok, _result("market", "partial")]) == "partial"
    codes = {s: RunSummary("r", "run", s, [], 0.0).exit_code for s in ("success", "partial", "failed")}
    assert codes == {"success": 0, "partial": 3, "failed": 4}


def test_totals_read_the_outcome_fields():
    steps = [
        StepResult("backfill", StepOutcome(coins_ok=3, rows_written=10, rows_quarantined=1, failures={"x": "404"})),
        StepResult("signals", StepOutcome(coins_ok=9, rows_written=7, extra={"rule_rows": 5})),
    ]
    totals = RunSummary("r", "run", "partial", steps, 1.0, {"calls": 4, "credits": 8}).totals()
    assert totals["coins_updated"] == 3  # only the market-data step counts coins updated
    assert totals["rows_written"] == 17 and totals["rows_quarantined"] == 1 and totals["coins_failed"] == 1
    assert totals["api_calls"] == 4 and totals["api_credits"] == 8


def test_a_bug_in_a_step_is_recorded_then_raised(duck_store):
    def crash(ctx):
        raise ZeroDivisionError("x")

    ledger = Ledger(duck_store, "test")
    ledger.start_run()
    with pytest.raises(ZeroDivisionError):
        _run_with(duck_store, ledger, [Step("a", crash), Step("b", lambda ctx: StepOutcome(rows_written=1))])
    recorded = ledger_steps(duck_store, ledger.run_id).set_index("step")
    assert recorded.loc["a", "status"] == "failed" and recorded.loc["a", "error"] == "ZeroDivisionError: x"
    assert "b" not in recorded.index  # the run stops at a bug


def test_a_step_must_return_an_outcome(duck_store):
    ledger = Ledger(duck_store, "test")
    ledger.start_run()
    with pytest.raises(TypeError, match="not a StepOutcome"):
        _run_with(duck_store, ledger, [Step("a", lambda ctx: {"rows_written": 1})])


def _run_with(store, ledger, steps):
    ctx = StepContext(store=store, settings=load_settings(), run_id=ledger.run_id, now=dt.datetime.now(dt.UTC))
    return asyncio.run(run_steps(steps, ledger, ctx))


def test_keyboard_interrupt_is_not_swallowed(duck_store):
    def stop(ctx):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(duck_store, [Step("a", stop)])
