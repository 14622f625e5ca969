"""Structured logs: one JSON object per line, or plain text for a terminal.

Loggers are given data through ``extra=``; the formatter writes those fields
next to the message. Nothing here redacts: callers never pass credentials or
message text to a logger in the first place.

A value may still come from a caller (a token's ``sub``, a model name), so no
value can start a line of its own: every character that some reader takes
as a line break or a terminal control (C0 and C1 controls, DEL, U+2028 and
U+2029) is written as an escape, in both formats.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from llm_gateway.settings.server import LogFormat, LogSettings

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {
    code: _SHORT_ESCAPES.get(chr(code), f"\\x{code:02x}")
    for code in (*range(0x20), *range(0x7F, 0xA0))
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}
# orjson escapes C0 controls itself; DEL, C1 and the Unicode separators it leaves.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029)}
_JSON_UNESCAPED = re.compile("[\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` with every line-breaking or control character written as an escape."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        if _JSON_UNESCAPED.search(line):
            line = line.translate(_JSON_ESCAPES)
        return line


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={escape(str(v))}" for k, v in _extras(record).items())
        message = escape(record.getMessage())
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {message}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: LogSettings | None = None) -> None:
    """Send every logger to stderr in the format and at the level of ``settings``."""
    settings = settings or LogSettings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the gateway logs each request itself
