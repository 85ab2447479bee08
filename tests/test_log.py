"""Logs: the seed's JSON fields plus context, a console format, and secrets redacted everywhere."""

from __future__ import annotations

import io
import json
import logging

from kallos.log import configure_logging, get_logger, register_secret


def test_json_lines_carry_seed_fields_and_context() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=stream)
    log = get_logger("kallos.test")
    log.info("processed market data", extra={"coin_id": "bitcoin", "duration_seconds": 2.5, "run_id": "r1"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"step": "indicators"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    for key in ("timestamp", "level", "logger", "message", "module", "function", "line"):
        assert key in first
    assert first["timestamp"].endswith("+00:00")
    assert first["coin_id"] == "bitcoin" and first["duration_seconds"] == 2.5 and first["run_id"] == "r1"
    assert first["function"] == "test_json_lines_carry_seed_fields_and_context"
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"] and second["step"] == "indicators"


def test_console_format_is_readable() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", level="DEBUG", stream=stream)
    get_logger("kallos.test").warning("slow response", extra={"endpoint": "/ping"})
    line = stream.getvalue().strip()
    assert "WARNING" in line and "slow response" in line and "endpoint=/ping" in line
    assert not line.startswith("{")


def test_registered_secret_is_redacted_from_messages_args_and_context() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=stream)
    register_secret("CG-abcdef123456")
    log = logging.getLogger("kallos.test")
    log.info("url %s", "https://x/?key=CG-abcdef123456", extra={"header": "CG-abcdef123456"})
    log.info("direct CG-abcdef123456")
    assert "CG-abcdef123456" not in stream.getvalue()
    assert stream.getvalue().count("***") >= 3


def test_every_encoding_of_a_secret_is_redacted() -> None:
    """Issue 13 #2: the HTTP library quoted the key (`b'KEY\\n'`), and only the exact form was redacted."""
    from urllib.parse import quote

    from kallos.log import redact

    key = "CG-q/u+o=te\"d\\9Zx"
    register_secret(key)
    for leaked in (
        f"Illegal header value {key.encode()!r}",  # bytes repr, escaped backslash and quote
        f"header {key!r}",
        json.dumps({"error": key}),
        f"https://x/?x_cg_pro_api_key={quote(key, safe='')}",
        f"key starts {key[:9]} and is cut",  # an 8+ character prefix is a leak too
    ):
        assert "***" in redact(leaked), leaked
        assert key[:8] not in redact(leaked) and quote(key, safe="")[:8] not in redact(leaked), leaked
    assert redact("CG-q/u") == "CG-q/u"  # shorter than 8 characters: ordinary text


def test_unwritable_log_file_is_a_configuration_error(tmp_path, monkeypatch, capsys) -> None:
    """Issue 13 #4: a directory, or a path below a regular file (root ignores permissions), crashed."""
    from kallos.cli.main import main

    blocker = tmp_path / "regular-file"
    blocker.write_text("x")
    for bad in (tmp_path, blocker / "kallos.log"):
        monkeypatch.setenv("KALLOS_LOG_FILE", str(bad))
        assert main(["db", "status"]) == 78
        err = capsys.readouterr().err
        assert "KALLOS_LOG_FILE" in err and str(bad) in err and "Traceback" not in err
