"""The directory, tenant by tenant: a tenant's record, its teams and its users (names,
tier, role), the service the admin API and the CLI are to share.

Every operation is confined to one tenant (``None``: the principals without one, stored
as ""): another tenant's team or user is not found (never "forbidden": its existence is
not revealed), as an unknown one is. A tenant reads and updates only its own record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_gateway.errors import InvalidRequest, NotFound
from llm_gateway.storage.models import DirectoryUser, Team, Tenant


class TeamNotFound(NotFound):
    code = "team_not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


class AlreadyExists(InvalidRequest):
    status = 409
    code = "already_exists"


@dataclass(frozen=True, slots=True)
class TenantInfo:
    name: str | None
    display_name: str | None
    tier: str | None


@dataclass(frozen=True, slots=True)
class TeamInfo:
    tenant: str | None
    name: str
    tier: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserInfo:
    tenant: str | None
    user_id: str
    team: str | None
    role: str | None
    tier: str | None
    created_at: datetime


#: A field of an update left as it is.
UNCHANGED = object()


def _key(tenant: str | None) -> str:
    return "" if tenant is None else tenant


def _tenant(stored: str) -> str | None:
    return stored or None


class Directory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # --- the tenant's own record ---------------------------------------------------------

    async def tenant(self, tenant: str | None) -> TenantInfo:
        async with self.sessions() as session:
            row = await session.get(Tenant, _key(tenant))
        if row is None:
            return TenantInfo(tenant, None, None)
        return TenantInfo(tenant, row.display_name, row.tier)

    async def update_tenant(
        self, tenant: str | None, *, display_name: object = UNCHANGED, tier: object = UNCHANGED
    ) -> TenantInfo:
        async with self.sessions.begin() as session:
            row = await session.get(Tenant, _key(tenant))
            if row is None:
                row = Tenant(name=_key(tenant), created_at=datetime.now(UTC))
                session.add(row)
            if display_name is not UNCHANGED:
                row.display_name = _optional(display_name)
            if tier is not UNCHANGED:
                row.tier = _optional(tier)
        return await self.tenant(tenant)

    # --- teams ---------------------------------------------------------------------------

    async def create_team(self, tenant: str | None, name: str, tier: str | None) -> TeamInfo:
        row = Team(tenant=_key(tenant), name=name, tier=tier, created_at=datetime.now(UTC))
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise AlreadyExists(f"a team {name!r} exists already") from None
        return _team(row)

    async def teams(self, tenant: str | None) -> list[TeamInfo]:
        query = select(Team).where(Team.tenant == _key(tenant)).order_by(Team.name)
        async with self.sessions() as session:
            return [_team(row) for row in await session.scalars(query)]

    async def team(self, tenant: str | None, name: str) -> TeamInfo:
        async with self.sessions() as session:
            row = await session.get(Team, (_key(tenant), name))
        if row is None:
            raise TeamNotFound(f"no team {name[:64]!r}")
        return _team(row)

    async def update_team(self, tenant: str | None, name: str, *, tier: object) -> TeamInfo:
        async with self.sessions.begin() as session:
            row = await session.get(Team, (_key(tenant), name))
            if row is None:
                raise TeamNotFound(f"no team {name[:64]!r}")
            if tier is not UNCHANGED:
                row.tier = _optional(tier)
        return await self.team(tenant, name)

    async def delete_team(self, tenant: str | None, name: str) -> TeamInfo:
        async with self.sessions.begin() as session:
            row = await session.get(Team, (_key(tenant), name))
            if row is None:
                raise TeamNotFound(f"no team {name[:64]!r}")
            info = _team(row)
            await session.delete(row)
        return info

    # --- users ---------------------------------------------------------------------------

    async def create_user(
        self,
        tenant: str | None,
        user_id: str,
        *,
        team: str | None = None,
        role: str | None = None,
        tier: str | None = None,
    ) -> UserInfo:
        if team is not None:
            await self.team(tenant, team)  # a team of the same tenant, or not found
        row = DirectoryUser(
            tenant=_key(tenant), user_id=user_id, team=team, role=role, tier=tier,
            created_at=datetime.now(UTC),
        )  # fmt: skip
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise AlreadyExists(f"a user {user_id!r} exists already") from None
        return _user(row)

    async def users(self, tenant: str | None) -> list[UserInfo]:
        query = (
            select(DirectoryUser)
            .where(DirectoryUser.tenant == _key(tenant))
            .order_by(DirectoryUser.user_id)
        )
        async with self.sessions() as session:
            return [_user(row) for row in await session.scalars(query)]

    async def user(self, tenant: str | None, user_id: str) -> UserInfo:
        async with self.sessions() as session:
            row = await session.get(DirectoryUser, (_key(tenant), user_id))
        if row is None:
            raise UserNotFound(f"no user {user_id[:64]!r}")
        return _user(row)

    async def update_user(
        self,
        tenant: str | None,
        user_id: str,
        *,
        team: object = UNCHANGED,
        role: object = UNCHANGED,
        tier: object = UNCHANGED,
    ) -> UserInfo:
        if isinstance(team, str):
            await self.team(tenant, team)
        async with self.sessions.begin() as session:
            row = await session.get(DirectoryUser, (_key(tenant), user_id))
            if row is None:
                raise UserNotFound(f"no user {user_id[:64]!r}")
            if team is not UNCHANGED:
                row.team = _optional(team)
            if role is not UNCHANGED:
                row.role = _optional(role)
            if tier is not UNCHANGED:
                row.tier = _optional(tier)
        return await self.user(tenant, user_id)

    async def delete_user(self, tenant: str | None, user_id: str) -> UserInfo:
        async with self.sessions.begin() as session:
            row = await session.get(DirectoryUser, (_key(tenant), user_id))
            if row is None:
                raise UserNotFound(f"no user {user_id[:64]!r}")
            info = _user(row)
            await session.delete(row)
        return info


def _optional(value: object) -> str | None:
    assert value is None or isinstance(value, str)
    return value


def _team(row: Team) -> TeamInfo:
    return TeamInfo(_tenant(row.tenant), row.name, row.tier, row.created_at)


def _user(row: DirectoryUser) -> UserInfo:
    return UserInfo(_tenant(row.tenant), row.user_id, row.team, row.role, row.tier, row.created_at)
