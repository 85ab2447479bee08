"""Issue 13 #4: a DuckDB path that cannot hold a store is named in a clear error (exit 4), and never touched.

Read-only and full filesystems are real: small tmpfs mounts (the tests need root with CAP_SYS_ADMIN, as in the
project's containers, and skip with the reason otherwise)."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.errors import StoreError, StoreWriteError
from kallos.store import open_store


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("content", [b"", b"garbage, not a database\n" * 40, b"SQLite format 3\x00" + bytes(200)])
def test_garbage_or_empty_file_is_named_and_left_untouched(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kallos.duckdb"
    path.write_bytes(content)
    before = _digest(path)
    assert main(["db", "init", "--database-url", f"duckdb:///{path}"]) == 4
    err = capsys.readouterr().err
    assert str(path) in err and "not a DuckDB database" in err and "Traceback" not in err
    assert _digest(path) == before and not Path(f"{path}.wal").exists()


def test_directory_as_database_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "store.duckdb"
    target.mkdir()
    assert main(["status", "--database-url", f"duckdb:///{target}"]) == 4
    err = capsys.readouterr().err
    assert f"{target} is a directory" in err and list(target.iterdir()) == []


def test_folder_that_cannot_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["db", "init", "--database-url", f"duckdb:///{blocker / 'sub' / 'k.duckdb'}"]) == 4
    err = capsys.readouterr().err  # the lock file beside the database is the first thing that cannot be made
    assert str(blocker / "sub") in err and "Not a directory" in err and "Traceback" not in err


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    mounted: list[Path] = []

    def mount(size: str, *, read_only: bool = False) -> Path:
        where = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): needs root with CAP_SYS_ADMIN")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_read_only_filesystem(tmpfs, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmpfs("1m", read_only=True)
    assert main(["db", "init", "--database-url", f"duckdb:///{where / 'k.duckdb'}"]) == 4
    err = capsys.readouterr().err
    assert str(where / "k.duckdb") in err and "Read-only file system" in err and "Traceback" not in err


def test_full_disk_reports_no_space_not_cannot_rollback(tmpfs) -> None:
    """A write that fills the disk fails naming the cause; what was committed before stays readable."""
    where = tmpfs("3m")
    store = open_store(f"duckdb:///{where / 'k.duckdb'}")
    try:
        store.init()
        store.upsert("coins", pd.DataFrame({"coingecko_id": ["btc"], "symbol": ["btc"], "name": ["Bitcoin"]}))
        rng = np.random.default_rng(0)
        committed = 0
        with pytest.raises(StoreWriteError) as info:
            for i in range(100):
                days = pd.date_range("1900-01-01", periods=20_000) + pd.Timedelta(days=20_000 * i)
                frame = pd.DataFrame({"coin_id": "btc", "date": days, "close": rng.random(len(days))})
                store.upsert("daily_market_data", frame)
                committed += len(frame)
        assert "No space left on device" in str(info.value)
        assert "cannot rollback" not in str(info.value)
        assert isinstance(info.value, StoreError) and info.value.exit_code == 4
    finally:
        store.close()
    assert committed > 0
    copy = where.parent / "copy.duckdb"  # off the full disk: reopen and find every committed row
    copy.write_bytes((where / "k.duckdb").read_bytes())
    wal = where / "k.duckdb.wal"
    if wal.exists():
        Path(f"{copy}.wal").write_bytes(wal.read_bytes())
    again = open_store(f"duckdb:///{copy}")
    try:
        assert again.scalar("SELECT count(*) FROM daily_market_data") == committed
    finally:
        again.close()
