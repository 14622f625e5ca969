"""Log lines a caller cannot forge: every value is escaped, in both formats."""

from __future__ import annotations

import json
import logging

import pytest

from llm_gateway.observability.logging import JsonFormatter, TextFormatter, escape

BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x1b"]


def record(msg: str, **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": msg, "levelname": "INFO", "name": "t", **extra})


@pytest.mark.parametrize("brk", BREAKS)
@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_no_value_starts_a_line_of_its_own(formatter: logging.Formatter, brk: str) -> None:
    line = formatter.format(record(f"req{brk}forged", user=f"bob{brk}INFO forged"))
    assert len(line.splitlines()) == 1, repr(line)


def test_json_lines_stay_json_and_keep_the_value() -> None:
    line = JsonFormatter().format(record("request", user="bob\u2028x\x85y"))
    assert json.loads(line)["user"] == "bob\u2028x\x85y"


def test_escapes_are_readable_and_plain_text_is_untouched() -> None:
    assert escape("plain text, ünïcode 東京") == "plain text, ünïcode 東京"
    assert escape("a\nb\tc\x00") == "a\\nb\\tc\\x00"
