import subprocess
import sys
import time

import pytest

from kallos.errors import LockHeldError
from kallos.pipeline.lock import advisory_key, is_locked, lock_file_for, pipeline_lock


def test_file_lock_second_holder_is_refused(tmp_path):
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with pipeline_lock(url, run_id="first-run"):
        assert lock_file_for(url).exists()
        with pytest.raises(LockHeldError) as err:
            with pipeline_lock(url, run_id="second-run"):
                pass
        assert err.value.exit_code == 5
        assert "first-run" in str(err.value) and "another kallos run" in str(err.value)
        assert is_locked(url)
    assert not is_locked(url)
    with pipeline_lock(url):  # released: can be taken again
        pass


def test_file_lock_across_processes(tmp_path):
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    code = (
        "import sys, time\n"
        "from kallos.pipeline.lock import pipeline_lock\n"
        f"with pipeline_lock({url!r}, run_id='child'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError, match="child"):
            with pipeline_lock(url):
                pass
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while is_locked(url) and time.monotonic() < deadline:  # the kernel drops a dead process's flock
        time.sleep(0.05)
    assert not is_locked(url)


def test_advisory_keys_differ_per_schema():
    assert advisory_key("a") != advisory_key("b")
    assert advisory_key(None) == advisory_key("public")
    assert -(2**63) <= advisory_key("x") < 2**63


@pytest.mark.postgres
def test_advisory_lock_on_postgresql(pg_url, pg_schema):
    url = f"{pg_url}?schema={pg_schema}"
    other = f"{pg_url}?schema={pg_schema}x"
    with pipeline_lock(url, run_id="pg-first"):
        with pytest.raises(LockHeldError) as err:
            with pipeline_lock(url):
                pass
        assert "pg-first" in str(err.value)
        with pipeline_lock(other):  # another schema, another lock
            pass
    with pipeline_lock(url):
        pass
