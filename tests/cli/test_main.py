"""The entry point: `--version`, and a bug surfacing as exit 1 with its traceback in the log."""

from __future__ import annotations

from pathlib import Path

import pytest

import kallos
from kallos.cli.main import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kallos {kallos.__version__}"


def test_a_bug_exits_1_with_its_traceback_in_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import kallos.pipeline.status

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero in status_report")

    monkeypatch.setattr(kallos.pipeline.status, "status_report", broken)
    log_file = tmp_path / "kallos.log"
    monkeypatch.setenv("KALLOS_LOG_FILE", str(log_file))
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError" in err and "a bug in kallos" in err
    logged = log_file.read_text(encoding="utf-8")
    assert "Traceback" in logged and "status_report" in logged
