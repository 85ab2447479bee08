import asyncio

import pytest

from kallos.errors import UnknownCoinError
from kallos.pipeline.ledger import Ledger
from kallos.pipeline.ledger import run_steps as ledger_steps
from kallos.pipeline.runner import RunSummary, Step, outcome_of, run_status, run_steps, step_figures


def _run(store, steps):
    ledger = Ledger(store, "test")
    ledger.start_run()
    return ledger, asyncio.run(run_steps(steps, ledger))


def test_a_failing_step_is_recorded_and_independent_steps_go_on(duck_store):
    async def market():
        return {"rows_written": 5, "failed": {"ghost": "not found"}}

    def boom():
        raise UnknownCoinError("1 coin(s) not in the coins table", table="daily_market_data", coins=["ghost"])

    def later():
        return {"rows_written": 2}

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
    assert "indicators failed" in results[2].counts["reason"]
    recorded = ledger_steps(duck_store, ledger.run_id).set_index("step")
    assert recorded.loc["indicators", "status"] == "failed"
    assert "ghost" in recorded.loc["market", "error"]
    assert run_status(results) == "partial"


def test_run_status_maps_to_exit_codes():
    from kallos.pipeline.runner import StepResult

    ok, part, bad, skip = (StepResult("a", s) for s in ("success", "partial", "failed", "skipped"))
    assert run_status([ok, skip]) == "success"
    assert run_status([skip]) == "success"
    assert run_status([ok, part]) == "partial"
    assert run_status([ok, bad]) == "partial"
    assert run_status([bad, skip, bad]) == "failed"
    assert run_status([ok, StepResult("market", "failed")]) == "failed"
    assert run_status([ok, StepResult("market", "partial")]) == "partial"
    codes = {s: RunSummary("r", "run", s, [], 0.0).exit_code for s in ("success", "partial", "failed")}
    assert codes == {"success": 0, "partial": 3, "failed": 4}


def test_outcome_and_figures_accept_both_failure_conventions():
    assert outcome_of({"failed": 0, "failures": {}}) == "success"
    assert outcome_of({"failed": 2, "failures": {"a": "x", "b": "y"}}) == "partial"
    assert outcome_of({"failed": {"a": "x"}}) == "partial"
    assert outcome_of({"status": "skipped", "reason": "no data"}) == "skipped"
    assert step_figures({"rule_rows": 3, "composite_rows": 4, "quarantined": 2})["rows_written"] == 7
    assert step_figures({"rows_written": 9, "rule_rows": 3})["rows_written"] == 9
    assert step_figures({"rows_quarantined": 2})["rows_quarantined"] == 2


def test_unexpected_exceptions_are_failures_not_crashes(duck_store):
    def crash():
        raise ZeroDivisionError("x")

    _, results = _run(duck_store, [Step("a", crash), Step("b", lambda: {"rows_written": 1})])
    assert [r.status for r in results] == ["failed", "success"]
    assert results[0].error == "ZeroDivisionError: x"


def test_keyboard_interrupt_is_not_swallowed(duck_store):
    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(duck_store, [Step("a", stop)])
