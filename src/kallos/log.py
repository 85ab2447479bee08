"""Logging: JSON lines for machines, a compact readable format for people.

Context goes in ``extra=`` (``coin_id``, ``duration_seconds``, ``run_id``, ``step``, counts...) and lands as
top-level JSON keys. A redaction filter removes registered secrets (the API key) from every message and argument,
so a key can never reach a log line even if some code formats it by mistake.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRETS: set[str] = set()
REDACTED = "***"
_HANDLER_NAME = "kallos"  # the name of the one handler setup_logging installs (and replaces when called again)


def register_secret(value: str | None) -> None:
    """Never let this value appear in a log line (and in :func:`redact` output)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(str(record.msg))
            if record.args:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


class JSONFormatter(logging.Formatter):
    """The seed's fields, UTC ISO 8601 timestamps, plus the event's context."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        for key, value in context_of(record).items():
            data[key] = value
        return redact(json.dumps(data, default=str))


class ConsoleFormatter(logging.Formatter):
    """``12:00:01 INFO  kallos.ingest  message  coin_id=bitcoin rows=365``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in context_of(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}  {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def configure_logging(
    *,
    fmt: str = "console",
    level: str = "INFO",
    file: Path | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install one handler on the ``kallos`` logger (idempotent: replaces the previous one)."""
    logger = logging.getLogger("kallos")
    for old in list(logger.handlers):
        if old.get_name() == _HANDLER_NAME:
            logger.removeHandler(old)
            old.close()
    handler: logging.Handler
    if file is not None:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RedactingFilter())
    handler.set_name(_HANDLER_NAME)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = True
    return handler


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("kallos") else f"kallos.{name}")
