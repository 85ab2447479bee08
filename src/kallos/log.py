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
from urllib.parse import quote, quote_plus

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRETS: set[str] = set()
REDACTED = "***"
_HANDLER_NAME = "kallos"  # the name of the one handler setup_logging installs (and replaces when called again)


MIN_PREFIX = 8
"""A run of this many leading characters of a secret is itself redacted (a truncated key is still a leak)."""


def secret_forms(value: str) -> set[str]:
    """Every way a library may print `value`: as is, repr-escaped, JSON-escaped, URL-quoted, bytes repr."""
    forms = {
        value,
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
        repr(value.encode("utf-8", "backslashreplace"))[2:-1],
        value.encode("unicode_escape").decode("ascii"),
    }
    return {f for f in forms if f}


def register_secret(value: str | None) -> None:
    """Never let this value, in any encoding, appear in a log line (and in :func:`redact` output).

    docs/decisions.md#D50: besides the exact value, its escaped and quoted forms and any run of its first
    MIN_PREFIX or more characters are redacted."""
    if value and len(value) >= 4:
        _SECRETS.update(secret_forms(value))


def _prefix_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """Spans of `text` that start with the secret's first MIN_PREFIX characters, extended as far as they match."""
    head = secret[:MIN_PREFIX]
    spans, start = [], text.find(head)
    while start >= 0:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        spans.append((start, end))
        start = text.find(head, end)
    return spans


def redact(text: str) -> str:
    """Replace every registered secret form (longest first), then any 8+ character prefix of one."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for secret in _SECRETS:
        if len(secret) > MIN_PREFIX and secret[:MIN_PREFIX] in text:
            for start, end in reversed(_prefix_spans(text, secret)):
                text = text[:start] + REDACTED + text[end:]
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
        try:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(file, encoding="utf-8")
        except OSError as exc:
            from kallos.errors import ConfigError

            raise ConfigError(
                f"cannot write the log file {file}: {exc.strerror or exc}; point KALLOS_LOG_FILE at a writable "
                "file (its folder is created), or unset it to log to stderr",
                setting="KALLOS_LOG_FILE",
            ) from None
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
