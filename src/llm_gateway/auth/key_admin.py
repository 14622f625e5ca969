"""Managing API keys, tenant by tenant: what the admin API and the CLI's ``keys`` share.

Every operation is confined to a tenant: a key of another tenant is not
found (never "forbidden": its existence is not revealed). The admin API
confines each call to the caller's tenant (``None``: the keys without a
tenant); the CLI, run by the operator, works on every tenant's keys
(:data:`EVERY_TENANT`) unless told one. Keys themselves are returned once,
by :meth:`KeyAdmin.create` and :meth:`KeyAdmin.rotate`; nothing else ever
shows one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from llm_gateway.auth.api_keys import ApiKeyStore, KeyInfo
from llm_gateway.errors import InvalidRequest, NotFound


class _Every(Enum):
    TENANT = "every tenant"


#: The CLI's scope: every tenant's keys.
EVERY_TENANT: Final = _Every.TENANT
#: A tenant's name; None: the keys without a tenant; or EVERY_TENANT.
Scope = str | None | _Every

#: The longest overlap a rotation may give the old key (30 days).
MAX_OVERLAP_SECONDS = 30 * 86_400


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class ApiKeyNotActive(InvalidRequest):
    """A rotation of a key that is revoked, expired or already rotated."""

    status = 409
    code = "api_key_not_active"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key is: everything but its tenant, which is the scope's."""

    user_id: str
    role: str = "user"
    tier: str | None = None
    team: str | None = None
    description: str | None = None
    environment: str | None = None
    expires_at: datetime | None = None
    allowed_models: tuple[str, ...] | None = None  # None: whatever the policy allows


class KeyAdmin:
    def __init__(self, store: ApiKeyStore) -> None:
        self.store = store

    async def create(self, spec: KeySpec, tenant: str | None) -> tuple[str, KeyInfo]:
        """A new key of ``tenant``: the key (to show once) and what is stored."""
        return await self.store.create(
            user_id=spec.user_id, role=spec.role, tier=spec.tier, team=spec.team,
            tenant=tenant, expires_at=spec.expires_at, description=spec.description,
            environment=spec.environment, allowed_models=spec.allowed_models,
        )  # fmt: skip

    async def list(self, scope: Scope) -> list[KeyInfo]:
        if scope is EVERY_TENANT:
            return await self.store.list()
        if scope is None:
            return [k for k in await self.store.list() if k.tenant is None]
        return await self.store.list(tenant=scope)

    async def show(self, key_id: str, scope: Scope) -> KeyInfo:
        info = await self.store.get(key_id) if _plausible(key_id) else None
        if info is None or (scope is not EVERY_TENANT and info.tenant != scope):
            raise ApiKeyNotFound(f"no API key {key_id[:64]!r}")
        return info

    async def revoke(self, key_id: str, scope: Scope) -> KeyInfo:
        """Revoke it (a key already revoked stays as it was); what it is now."""
        await self.show(key_id, scope)
        await self.store.revoke(key_id)
        return await self.show(key_id, scope)

    async def rotate(
        self, key_id: str, scope: Scope, overlap_seconds: float
    ) -> tuple[str, KeyInfo, KeyInfo]:
        """Its successor (the key, shown once, and what is stored) and the old key as it is
        now: usable for ``overlap_seconds`` more, then refused."""
        if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
            raise InvalidRequest(
                f"overlap_seconds: expected 0 to {MAX_OVERLAP_SECONDS}",
                code="invalid_field", param="overlap_seconds",
                details={"param": "overlap_seconds"},
            )  # fmt: skip
        old = await self.show(key_id, scope)
        rotated = await self.store.rotate(key_id, overlap_seconds)
        if rotated is None:
            raise ApiKeyNotActive(
                f"API key {key_id!r} is {old.state()}: only an active key can be rotated"
            )
        key, new = rotated
        return key, new, await self.show(key_id, scope)


def _plausible(key_id: str) -> bool:
    return 0 < len(key_id) <= 32 and key_id.isascii() and key_id.isalnum()
