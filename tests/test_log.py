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
