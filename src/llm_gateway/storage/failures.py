"""What went wrong with the database, in a few words an operator can act on.

A driver's exception says it at length and in its own terms (and SQLAlchemy's
rendering adds the statement and its parameters, which may hold audit data).
:func:`cause` names the kind of failure: the database is refusing connections,
the disk is full or read-only, a constraint refused a row, the database does
not exist, the password was refused, or, failing all of those, the driver's
error type and the first line of its message.
"""

from __future__ import annotations

import errno

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

_ERRNO = {
    errno.ECONNREFUSED: "connection refused",
    errno.ETIMEDOUT: "connection timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENOSPC: "disk full",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
}
# Phrases of SQLite's and PostgreSQL's messages, and what they mean.
_PHRASES = (
    ("database or disk is full", "disk full"),
    ("readonly database", "read-only database or file system"),
    ("read-only", "read-only database or file system"),
    ("disk i/o error", "disk I/O error"),
    ("unable to open database file", "cannot open the database file"),
    ("unique constraint", "a constraint refused the row"),
    ("violates", "a constraint refused the row"),
    ("password authentication failed", "the password was refused"),
    ("does not exist", "the database does not exist"),
    ("connection refused", "connection refused"),
)
_LONGEST = 160


def cause(exc: BaseException) -> str:
    """A short, safe description of why a database operation failed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _ERRNO:
            return _ERRNO[current.errno]
        inner = current.orig if isinstance(current, DBAPIError) else None
        current = inner or current.__cause__ or current.__context__
    driver = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    message = str(driver).strip().splitlines()[0] if str(driver).strip() else ""
    lowered = message.lower()
    for phrase, meaning in _PHRASES:
        if phrase in lowered:
            return meaning
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    shown = message[:_LONGEST]
    return f"{type(driver).__name__}: {shown}" if shown else type(driver).__name__


def where(url: str) -> str:
    """The database's URL without its password, to name it in a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that does not parse is still named, unrevealed
        return "the configured database"
