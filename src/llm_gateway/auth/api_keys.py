"""API keys: created once and shown once, stored as a SHA-256 digest, checked in constant time.

A key looks like ``lsg_<key id>_<secret>``. The key id is public (it appears in
``keys list`` and in audit rows) and finds the row; the digest of the whole key
is then compared with ``hmac.compare_digest``. A key carries 256 random bits,
so a fast hash is the right one: a slow password hash would only add latency.

A key is rotated by creating its successor with the same attributes; the old
key keeps working until the overlap given ends (its expiry is brought
forward), then is refused as ``api_key_rotated``. Who may do what to which
key (tenants, the admin API, the CLI) is :mod:`llm_gateway.auth.key_admin`'s.

Verified keys are cached in-process for ``API_KEY_CACHE_SECONDS`` so that the
hot path does not query the database; a revocation therefore takes effect
within that many seconds on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_gateway.auth.principal import Principal
from llm_gateway.errors import AuthenticationFailed
from llm_gateway.storage.models import ApiKey

PREFIX = "lsg_"
_ID_LENGTH = 12  # hex characters
_CACHE_LIMIT = 10_000


def is_api_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _key_id(key: str) -> str | None:
    body = key[len(PREFIX) :]
    key_id, sep, secret = body.partition("_")
    if not sep or len(key_id) != _ID_LENGTH or not secret:
        return None
    return key_id


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``keys list`` shows: everything about a key except the key."""

    key_id: str
    user_id: str
    role: str
    tier: str | None
    team: str | None
    tenant: str | None
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    environment: str | None = None
    replaced_by: str | None = None  # the key it was rotated to
    allowed_models: tuple[str, ...] | None = None  # None: whatever the policy allows

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            row.key_id, row.user_id, row.role, row.tier, row.team, row.tenant,
            row.description, row.created_at, row.expires_at, row.revoked_at, row.environment,
            row.replaced_by, models_of(row),
        )  # fmt: skip

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``rotating`` (replaced, in its overlap), ``rotated``, ``expired``
        or ``revoked``."""
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "rotated" if self.replaced_by else "expired"
        return "rotating" if self.replaced_by else "active"


def models_of(row: ApiKey) -> tuple[str, ...] | None:
    """The names a key may ask for, as stored (a JSON list), or None."""
    if row.allowed_models is None:
        return None
    return tuple(str(name) for name in json.loads(row.allowed_models))


def _stored(models: tuple[str, ...] | list[str] | None) -> str | None:
    return None if models is None else json.dumps(list(models))


class ApiKeyStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache_seconds: float = 10.0
    ) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey]] = {}

    async def create(  # noqa: PLR0913 (keyword-only: one per column of the key)
        self,
        *,
        user_id: str,
        role: str,
        tier: str | None = None,
        team: str | None = None,
        tenant: str | None = None,
        expires_at: datetime | None = None,
        description: str | None = None,
        environment: str | None = None,
        allowed_models: tuple[str, ...] | list[str] | None = None,
    ) -> tuple[str, KeyInfo]:
        """Create a key; returns the key itself (to show once) and what is stored."""
        key_id = secrets.token_hex(_ID_LENGTH // 2)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            key_id=key_id, key_sha256=digest(key), user_id=user_id, role=role, tier=tier,
            team=team, tenant=tenant, description=description, environment=environment,
            created_at=datetime.now(UTC), expires_at=expires_at,
            allowed_models=_stored(allowed_models),
        )  # fmt: skip
        async with self.sessions.begin() as session:
            session.add(row)
        return key, KeyInfo.of(row)

    async def list(self, tenant: str | None = None) -> list[KeyInfo]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if tenant is not None:
            query = query.where(ApiKey.tenant == tenant)
        async with self.sessions() as session:
            return [KeyInfo.of(row) for row in (await session.scalars(query)).all()]

    async def get(self, key_id: str) -> KeyInfo | None:
        async with self.sessions() as session:
            row = await session.get(ApiKey, key_id)
        return None if row is None else KeyInfo.of(row)

    async def rotate(self, key_id: str, overlap_seconds: float) -> tuple[str, KeyInfo] | None:
        """A new key with the old one's attributes; the old one works ``overlap_seconds``
        more (never past its own expiry). None when there is no such usable key (revoked,
        expired or already rotated)."""
        now = datetime.now(UTC)
        key_id_new = secrets.token_hex(_ID_LENGTH // 2)
        key = f"{PREFIX}{key_id_new}_{secrets.token_urlsafe(32)}"
        async with self.sessions.begin() as session:
            old = await session.get(ApiKey, key_id, with_for_update=True)
            if old is None or old.revoked_at is not None or old.replaced_by is not None:
                return None
            if old.expires_at is not None and old.expires_at <= now:
                return None
            row = ApiKey(
                key_id=key_id_new, key_sha256=digest(key), user_id=old.user_id, role=old.role,
                tier=old.tier, team=old.team, tenant=old.tenant, description=old.description,
                environment=old.environment, created_at=now, expires_at=old.expires_at,
                allowed_models=old.allowed_models,
            )  # fmt: skip
            session.add(row)
            until = now + timedelta(seconds=overlap_seconds)
            old.expires_at = until if old.expires_at is None else min(old.expires_at, until)
            old.replaced_by = key_id_new
        self._cache.pop(key_id, None)
        return key, KeyInfo.of(row)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such (unrevoked) key."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        self._cache.pop(key_id, None)
        return bool(getattr(result, "rowcount", 0))

    async def verify(self, key: str) -> Principal:
        key_id = _key_id(key)
        if key_id is None:
            raise AuthenticationFailed("the API key is malformed", code="malformed_api_key")
        row = await self._row(key_id)
        if row is None or not hmac.compare_digest(row.key_sha256, digest(key)):
            raise AuthenticationFailed("the API key is not known", code="unknown_api_key")
        if row.revoked_at is not None:
            raise AuthenticationFailed("the API key has been revoked", code="api_key_revoked")
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            if row.replaced_by is not None:
                raise AuthenticationFailed(
                    "the API key has been rotated; use its successor", code="api_key_rotated"
                )
            raise AuthenticationFailed("the API key has expired", code="api_key_expired")
        return Principal(
            user_id=row.user_id, role=row.role, tier=row.tier, team=row.team, tenant=row.tenant,
            auth_method="api_key", key_id=row.key_id, environment=row.environment,
            allowed_models=models_of(row),
        )  # fmt: skip

    async def _row(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        async with self.sessions() as session:
            row = await session.get(ApiKey, key_id)
        if row is not None and self.cache_seconds > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_id] = (now, row)
        return row
