"""Where data lives: the database (audit log, API keys) and the shared state store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

from llm_gateway.settings.declare import Section, choice, integer, optional, seconds, text, var
from llm_gateway.settings.files import DATA_DIR
from llm_gateway.state.factory import StateBackend


class AuditContent(StrEnum):
    """What an audit row keeps of the prompt and the answer."""

    DIGEST = "digest"  # SHA-256 and length of each (the default)
    REDACTED = "redacted"  # the digests, and the text as it left (after DLP)
    NONE = "none"  # neither


class AuditMode(StrEnum):
    """When an answer may complete relative to its audit row (llm_gateway.audit.writer)."""

    STRICT = "strict"  # once the row is committed, or fsynced to the spool
    FAST = "fast"  # at once; the row follows in the next batch


def async_driver_url(url: str) -> str:
    """``url`` with the async driver SQLAlchemy needs (asyncpg, aiosqlite)."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


@dataclass(frozen=True, slots=True)
class StorageSettings(Section):
    """The database: SQLite under DATA_DIR unless DATABASE_URL or DB_HOST is set."""

    TITLE: ClassVar[str] = "Storage"

    database_url: str | None = var(
        "DATABASE_URL", optional(text), None, "the database's URL; wins over DB_*", secret=True
    )
    db_host: str | None = var(
        "DB_HOST", optional(text), None, "PostgreSQL's host (unset: SQLite in DATA_DIR)"
    )
    db_port: int = var("DB_PORT", integer(1, 65535), 5432, "PostgreSQL's port")
    db_name: str = var("DB_NAME", text, "llm_gateway", "the database's name")
    db_user: str = var("DB_USER", text, "postgres", "the database user")
    db_password: str | None = var(
        "DB_PASSWORD", optional(text), None, "the database user's password", secret=True
    )
    audit_batch_max: int = var(
        "AUDIT_BATCH_MAX", integer(1, 100_000), 500, "most audit rows committed in one transaction"
    )
    audit_wait_s: float = var(
        "AUDIT_WAIT_SECONDS", seconds, 10.0,
        "how long a request waits for its audit row to commit (then 503 audit_unavailable), "
        "and how long shutdown waits for the rows still queued",
    )  # fmt: skip
    audit_mode: AuditMode = var(
        "AUDIT_MODE", choice(AuditMode), AuditMode.STRICT,
        "strict: an answer completes once its row is committed or fsynced to the spool; "
        "fast: rows are committed in batches just after (a hard crash loses the last queued)",
    )  # fmt: skip
    audit_content: AuditContent = var(
        "AUDIT_STORE_CONTENT", choice(AuditContent), AuditContent.DIGEST,
        "what a row keeps of the prompt and answer: digest (SHA-256 and length), redacted "
        "(also the text as it left, after DLP) or none",
    )  # fmt: skip
    audit_content_max_chars: int = var(
        "AUDIT_CONTENT_MAX_CHARS", integer(1, 100_000_000), 100_000,
        "with AUDIT_STORE_CONTENT=redacted, the most characters kept of a prompt or an answer",
    )  # fmt: skip
    audit_spool_dir: Path | None = var(
        "AUDIT_SPOOL_DIR", optional(Path), None,
        "where audit rows wait on disk while the database cannot take them "
        "(unset: DATA_DIR/audit-spool)",
    )  # fmt: skip
    audit_spool_max_mb: int = var(
        "AUDIT_SPOOL_MAX_MB", integer(0, 10_000_000), 1024,
        "the spool's limit on disk; at it, requests are refused with 503 audit_unavailable "
        "(0: no spool, rows wait in memory for the database)",
    )  # fmt: skip
    audit_spool_after_s: float = var(
        "AUDIT_SPOOL_AFTER_SECONDS", seconds, 2.0,
        "how long a commit may take before its rows go to the spool instead",
    )  # fmt: skip
    audit_queue_max: int = var(
        "AUDIT_QUEUE_MAX", integer(1, 10_000_000), 20_000,
        "most audit rows waiting in memory; past it requests are refused (audit_unavailable)",
    )  # fmt: skip
    data_dir: Path = DATA_DIR.field()

    @property
    def spool_dir(self) -> Path:
        return self.audit_spool_dir or self.data_dir / "audit-spool"

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: DATABASE_URL, else PostgreSQL from DB_*, else SQLite."""
        if self.database_url:
            return async_driver_url(self.database_url)
        if self.db_host:
            password = f":{quote(self.db_password, safe='')}" if self.db_password else ""
            return (
                f"postgresql+asyncpg://{quote(self.db_user, safe='')}{password}"
                f"@{self.db_host}:{self.db_port}/{self.db_name}"
            )
        return f"sqlite+aiosqlite:///{self.data_dir / 'gateway.db'}"


@dataclass(frozen=True, slots=True)
class StateSettings(Section):
    """State shared by replicas (rate-limit windows, vault, sessions): in-process or Redis."""

    TITLE: ClassVar[str] = "State"

    backend: StateBackend = var(
        "STATE_BACKEND", choice(StateBackend), StateBackend.MEMORY,
        "memory (one process) or redis (shared by replicas)",
    )  # fmt: skip
    redis_url: str | None = var(
        "REDIS_URL", optional(text), None, "Redis's URL; wins over REDIS_*", secret=True
    )
    redis_host: str = var("REDIS_HOST", text, "127.0.0.1", "Redis's host")
    redis_port: int = var("REDIS_PORT", integer(1, 65535), 6379, "Redis's port")
    redis_db: int = var("REDIS_DB", integer(0, 1024), 0, "Redis's database number")
    redis_password: str | None = var(
        "REDIS_PASSWORD", optional(text), None, "Redis's password", secret=True
    )
    timeout_ms: int = var(
        "STATE_TIMEOUT_MS", integer(1, 60_000), 250,
        "the longest a request waits on Redis before the limits fail open or closed",
    )  # fmt: skip

    @property
    def redis_dsn(self) -> str:
        if self.redis_url:
            return self.redis_url
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"
