"""The gateway's tables. Schema changes go through an Alembic migration, never ``create_all``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


class AuditLog(Base):
    """One row per request the gateway received, answered, refused or failed.

    Prompt and response text are never stored raw: only a SHA-256 digest and
    a length, so that an incident can be matched against a known text without
    the audit table becoming a second copy of every conversation.
    """

    __tablename__ = "audit_logs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_audit_logs_request_id"),
        Index("ix_audit_logs_tenant_seq", "tenant", "seq"),
    )

    request_id: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[str | None] = mapped_column(String(255), index=True)
    team: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)
    key_id: Mapped[str | None] = mapped_column(String(64))
    auth_method: Mapped[str | None] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(64))
    model_requested: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(32))
    upstream_model: Mapped[str | None] = mapped_column(String(255))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float] = mapped_column(Float)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    tokens_used: Mapped[int] = mapped_column(Integer, default=0)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64))
    prompt_chars: Mapped[int | None] = mapped_column(Integer)
    response_sha256: Mapped[str | None] = mapped_column(String(64))
    response_chars: Mapped[int | None] = mapped_column(Integer)
    # The decision log: every decision, allow and deny, with the policy that made it.
    policy_decision: Mapped[str | None] = mapped_column(String(8))  # allow, deny, error
    policy_reasons: Mapped[str | None] = mapped_column(Text)  # a JSON list
    policy_revision: Mapped[str | None] = mapped_column(String(64))
    policy_eval_us: Mapped[float | None] = mapped_column(Float)
    # What DLP found, as types, counts and actions; never the values.
    dlp_action: Mapped[str | None] = mapped_column(String(16))  # the strongest action taken
    # A JSON list of {entity, direction, count, action}.
    dlp_findings: Mapped[str | None] = mapped_column(Text)
    # How much NER read: "full", "partial (time budget)", "full; answer: skipped (...)"...
    dlp_ner: Mapped[str | None] = mapped_column(String(120))
    # A JSON list of {model, provider, status, error_code, latency_ms}, one per try.
    attempts: Mapped[str | None] = mapped_column(Text)
    # How long a rate limit's queue held the request before it went on (None: not queued).
    queued_ms: Mapped[float | None] = mapped_column(Float)
    route: Mapped[str | None] = mapped_column(String(200))
    confirmation: Mapped[str | None] = mapped_column(String(64), index=True)
    # The answer's grounding check: counts and failed checks, never a value.
    grounding: Mapped[str | None] = mapped_column(String(255))
    # With AUDIT_STORE_CONTENT=redacted only: the request as it left (after DLP), as JSON
    # ({"system", "messages": [{"role", "text", "tool_calls"}]}), and the answer before
    # DLP restored anything. NULL by default (digests only).
    prompt_text: Mapped[str | None] = mapped_column(Text)
    response_text: Mapped[str | None] = mapped_column(Text)
    # The tenant's hash chain (llm_gateway.audit.chain): place, previous hash, own hash.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    chain_prev: Mapped[str | None] = mapped_column(String(64))
    chain_hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """Each tenant's chain head: its last row's ``seq`` and hash, locked by every writer
    that extends the chain (``tenant`` is "" for the rows without one)."""

    __tablename__ = "audit_chain_heads"

    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditPrune(Base):
    """A retention cut: the rows of a chain's prefix removed, and the new anchor (the last
    removed row's ``seq`` and hash) that the chain's first remaining row links to."""

    __tablename__ = "audit_prunes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant: Mapped[str] = mapped_column(String(255), index=True)  # "" for none
    pruned_at: Mapped[datetime] = mapped_column()
    before: Mapped[datetime] = mapped_column()  # the cut asked for
    rows: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)  # the anchor (0: nothing removed yet)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_request_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))  # the prune's own audit row


class MfaSecret(Base):
    """A person's TOTP secret for confirmations that need MFA, sealed (AES-GCM) under a key
    derived from the vault key: a database dump alone does not yield it."""

    __tablename__ = "mfa_secrets"

    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)  # "" for none
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    environment: Mapped[str | None] = mapped_column(String(64))  # where the key acts
    replaced_by: Mapped[str | None] = mapped_column(String(32))  # the key rotated to
    allowed_models: Mapped[str | None] = mapped_column(Text)  # a JSON list of names


class Tenant(Base):
    """A tenant's metadata: its display name and the tier its members get when their
    credential names none (``name`` "" is the principals without a tenant)."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    tier: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    # Its budgets (migration 0015), this scope's limits over rate_limits.yaml's; None: not set.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    cost_per_month_usd: Mapped[float | None] = mapped_column(Float)


class Team(Base):
    """A team of a tenant ("" for none): its tier, for members whose credential has none."""

    __tablename__ = "teams"

    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    tier: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    # Its budgets (migration 0015), this scope's limits over rate_limits.yaml's; None: not set.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    cost_per_month_usd: Mapped[float | None] = mapped_column(Float)


class DirectoryUser(Base):
    """A user of a tenant ("" for none): their team, role, tier and budgets as the directory
    keeps them."""

    __tablename__ = "users"

    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    team: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    # Their budgets (migration 0016), the user scope's limits over their tier's; None: not set.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    cost_per_month_usd: Mapped[float | None] = mapped_column(Float)
