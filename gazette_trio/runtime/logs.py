"""Structured logs: text or JSON lines, with shard and journal context.

`configure_logging(level, format)` installs one handler on the root logger
that writes to stderr either readable text lines

    2024-05-01T12:00:00.123Z INFO  gazette_trio.consumer: transaction committed shard=count-000 messages=12

or one JSON object per line

    {"time": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "gazette_trio.consumer",
     "msg": "transaction committed", "shard": "count-000", "messages": 12}

Context fields come from two places: `log_context(shard=..., journal=...)`,
which binds fields for everything logged in the block *and in every task
started inside it* (it is a context variable, and Trio tasks inherit the
context of the code that spawned them, so binding `shard=` around a shard's
nursery labels all its tasks' records); and `extra={...}` on a single call.

This module owns log formatting and context; it does not decide what is
logged.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TextIO

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "current_context", "log_context"]

_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "gazette_trio_log_context", default=types.MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "context",
}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every record logged in this block and in tasks it starts."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> Mapping[str, Any]:
    """The context fields bound here."""
    return _CONTEXT.get()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "context", {}))
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _ContextFilter(logging.Filter):
    """Stamps each record with the context bound where it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = _CONTEXT.get()
        return True


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message key=value ...`, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, msg, context fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


_HANDLER_NAME = "gazette-trio"


def configure_logging(
    level: str = "info",
    format: Literal["text", "json"] = "text",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send all logging to `stream` (stderr) in the given format and level.

    Calling it again replaces the handler it installed before, so it is safe
    to call once per `serve` and in tests.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
