"""Database failures named in a few words, and databases named without their passwords."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from llm_gateway.storage.failures import cause, where


def _wrapped(orig: BaseException) -> OperationalError:
    """As SQLAlchemy raises it: the statement and its parameters around the driver's error."""
    return OperationalError("INSERT INTO audit_logs VALUES (?)", ("alice@example.com",), orig)


@pytest.mark.parametrize(
    ("error", "named"),
    [
        (_wrapped(sqlite3.OperationalError("database or disk is full")), "disk full"),
        (_wrapped(sqlite3.OperationalError("attempt to write a readonly database")),
         "read-only database or file system"),
        (_wrapped(sqlite3.OperationalError("disk I/O error")), "disk I/O error"),
        (OSError(errno.ECONNREFUSED, "Connect call failed"), "connection refused"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
        (IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
         "a constraint refused the row"),
        (TimeoutError(), "no answer in time"),
        (RuntimeError("something new\nand its details"), "RuntimeError: something new"),
    ],
)  # fmt: skip
def test_the_cause_is_named(error: BaseException, named: str) -> None:
    assert cause(error) == named


def test_a_cause_found_down_the_chain() -> None:
    outer = RuntimeError("could not connect")
    outer.__cause__ = OSError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 1)")
    assert cause(outer) == "connection refused"


def test_the_statement_and_its_parameters_never_show() -> None:
    text = cause(_wrapped(sqlite3.OperationalError("no such table: audit_logs")))
    assert "alice@example.com" not in text
    assert "INSERT" not in text
    assert "no such table" in text


def test_a_database_is_named_without_its_password() -> None:
    named = where("postgresql+asyncpg://gw:s3cret-pw@db.internal:5432/llm")
    assert "s3cret-pw" not in named
    assert "db.internal:5432/llm" in named
    assert where("sqlite+aiosqlite:///data/gateway.db") == "sqlite+aiosqlite:///data/gateway.db"
