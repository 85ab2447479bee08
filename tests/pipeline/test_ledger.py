import datetime as dt
import json

from kallos import clock
from kallos.pipeline.ledger import Ledger, close_interrupted, last_success, new_run_id, recent_runs, run_steps


def test_run_and_steps_are_recorded(store):
    clock.set_now(dt.datetime(2025, 3, 3, 6, 0, tzinfo=dt.UTC))
    ledger = Ledger(store, "run")
    run_id = ledger.start_run()
    runs = recent_runs(store)
    assert list(runs["run_id"]) == [run_id] and runs["status"].iloc[0] == "running"

    started = ledger.start_step("universe")
    assert run_steps(store, run_id)["status"].tolist() == ["running"]
    ledger.finish_step("universe", started, "success", {"coins": 3})
    s2 = ledger.start_step("market")
    ledger.finish_step("market", s2, "partial", {"failed": {"x": "404"}}, "1 coin(s) failed")
    ledger.finish_run("partial", {"rows_written": 10}, "market: 1 coin(s) failed")

    steps = run_steps(store, run_id)
    assert steps["step"].tolist() == ["universe", "market"]
    assert steps["status"].tolist() == ["success", "partial"]
    assert json.loads(steps["counts"].iloc[0]) == {"coins": 3}
    assert steps["error"].iloc[1] == "1 coin(s) failed"
    run = recent_runs(store).iloc[0]
    assert run["status"] == "partial" and json.loads(run["counts"]) == {"rows_written": 10}
    assert run["finished_at"] is not None and run["error"].startswith("market")
    assert last_success(store, "universe") == dt.datetime(2025, 3, 3, 6, 0, tzinfo=dt.UTC)
    assert last_success(store, "index") is None


def test_failed_steps_do_not_count_as_success(duck_store):
    ledger = Ledger(duck_store, "run")
    ledger.start_run()
    started = ledger.start_step("universe")
    ledger.finish_step("universe", started, "failed", error=RuntimeError("boom"))
    assert last_success(duck_store, "universe") is None
    assert run_steps(duck_store, ledger.run_id)["error"].iloc[0] == "RuntimeError: boom"


def test_run_ids_are_unique():
    clock.set_now(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("20250101T000000Z-") for i in ids)


def test_runs_left_running_by_a_dead_process_are_closed(store):
    dead = Ledger(store, "run")
    dead.start_run()
    dead.start_step("market")
    alive = Ledger(store, "run")
    alive.start_run()
    assert close_interrupted(store, alive.run_id) == 1
    runs = recent_runs(store).set_index("run_id")
    assert runs.loc[dead.run_id, "status"] == "failed" and "interrupted" in runs.loc[dead.run_id, "error"]
    assert runs.loc[alive.run_id, "status"] == "running"
    assert run_steps(store, dead.run_id)["status"].tolist() == ["failed"]
    assert close_interrupted(store, alive.run_id) == 0


def test_secrets_in_any_encoding_never_reach_the_ledger(store):
    """Issue 13 #2: the HTTP library's quoted form of the key was stored in pipeline_steps.error."""
    from kallos.log import register_secret

    key = "CG-ledgerSecret42"
    register_secret(key)
    ledger = Ledger(store, "run")
    ledger.start_run()
    started = ledger.start_step("market")
    quoted = f"LocalProtocolError: Illegal header value {(key + chr(10)).encode()!r}"
    ledger.finish_step("market", started, "failed", {"failed": {"bitcoin": f"url ...?k={key}"}}, quoted)
    ledger.finish_run("failed", None, RuntimeError(f"header {key[:10]}"))
    stored = json.dumps(store.query("SELECT * FROM pipeline_steps").astype(str).to_dict("records"))
    stored += json.dumps(store.query("SELECT * FROM pipeline_runs").astype(str).to_dict("records"))
    assert key[:8] not in stored and "***" in stored
