"""The directory, tenant by tenant: a tenant's record, its teams and its users (names,
tier, role and budgets), the service the admin API and the CLI share.

Every operation is confined to one tenant (``None``: the principals without one, stored
as ""): another tenant's team or user is not found (never "forbidden": its existence is
not revealed), as an unknown one is. A tenant reads and updates only its own record.

A user's, team's or tenant's budgets (``requests_per_minute``, ``tokens_per_month``,
``cost_per_month_usd``; ``None``: not set) are that scope's limits, over
``rate_limits.yaml``'s entry for it (a user's: over their tier's; see
:mod:`llm_gateway.auth.inheritance`).
Every change made through a :class:`Directory` calls its ``on_change`` listeners,
so that the process's cache of resolved identities forgets what it held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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


#: The budget fields a user, a team or a tenant may carry, as the admin API and the CLI
#: name them.
BUDGETS = ("requests_per_minute", "tokens_per_month", "cost_per_month_usd")

#: A directory record that may carry them.
Budgeted = DirectoryUser | Team | Tenant


@dataclass(frozen=True, slots=True)
class TenantInfo:
    name: str | None
    display_name: str | None
    tier: str | None
    requests_per_minute: int | None = None
    tokens_per_month: int | None = None
    cost_per_month_usd: float | None = None


@dataclass(frozen=True, slots=True)
class TeamInfo:
    tenant: str | None
    name: str
    tier: str | None
    created_at: datetime
    requests_per_minute: int | None = None
    tokens_per_month: int | None = None
    cost_per_month_usd: float | None = None


@dataclass(frozen=True, slots=True)
class UserInfo:
    tenant: str | None
    user_id: str
    team: str | None
    role: str | None
    tier: str | None
    created_at: datetime
    requests_per_minute: int | None = None
    tokens_per_month: int | None = None
    cost_per_month_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Lineage:
    """What the directory holds about one caller: their user record, the team that counts
    (the credential's, else the record's) and their tenant's record; ``None``: none kept."""

    user: DirectoryUser | None
    team: Team | None
    tenant: Tenant | None


#: A field of an update left as it is.
UNCHANGED = object()


def _key(tenant: str | None) -> str:
    return "" if tenant is None else tenant


def _tenant(stored: str) -> str | None:
    return stored or None


@dataclass(slots=True)
class Directory:
    sessions: async_sessionmaker[AsyncSession]
    #: Called after every change (the in-process identity cache's invalidation).
    on_change: list[Callable[[], None]] = field(default_factory=list)

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    # --- what the authenticate stage asks: one caller's records ----------------------------

    async def lineage(self, tenant: str | None, user_id: str, team: str | None) -> Lineage:
        """The caller's user record, their team's (``team``, else the record's) and their
        tenant's, read in one session: what they inherit, and their budgets (the limiter
        asks with the team as resolved, which is the record's when the credential names
        none, so both read the same rows)."""
        async with self.sessions() as session:
            user = await session.get(DirectoryUser, (_key(tenant), user_id))
            name = team if team is not None else (user.team if user is not None else None)
            team_row = await session.get(Team, (_key(tenant), name)) if name else None
            tenant_row = await session.get(Tenant, _key(tenant))
        return Lineage(user, team_row, tenant_row)

    # --- the tenant's own record ---------------------------------------------------------

    async def tenant(self, tenant: str | None) -> TenantInfo:
        async with self.sessions() as session:
            row = await session.get(Tenant, _key(tenant))
        if row is None:
            return TenantInfo(tenant, None, None)
        return TenantInfo(tenant, row.display_name, row.tier, *_budgets_of(row))

    async def update_tenant(
        self,
        tenant: str | None,
        *,
        display_name: object = UNCHANGED,
        tier: object = UNCHANGED,
        **budgets: object,
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
            _set_budgets(row, budgets)
        self._changed()
        return await self.tenant(tenant)

    # --- teams ---------------------------------------------------------------------------

    async def create_team(
        self, tenant: str | None, name: str, tier: str | None, **budgets: object
    ) -> TeamInfo:
        row = Team(tenant=_key(tenant), name=name, tier=tier, created_at=datetime.now(UTC))
        _set_budgets(row, budgets)
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise AlreadyExists(f"a team {name!r} exists already") from None
        self._changed()  # a member's team may have had no record until now
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

    async def update_team(
        self, tenant: str | None, name: str, *, tier: object = UNCHANGED, **budgets: object
    ) -> TeamInfo:
        async with self.sessions.begin() as session:
            row = await session.get(Team, (_key(tenant), name))
            if row is None:
                raise TeamNotFound(f"no team {name[:64]!r}")
            if tier is not UNCHANGED:
                row.tier = _optional(tier)
            _set_budgets(row, budgets)
        self._changed()
        return await self.team(tenant, name)

    async def delete_team(self, tenant: str | None, name: str) -> TeamInfo:
        async with self.sessions.begin() as session:
            row = await session.get(Team, (_key(tenant), name))
            if row is None:
                raise TeamNotFound(f"no team {name[:64]!r}")
            info = _team(row)
            await session.delete(row)
        self._changed()
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
        **budgets: object,
    ) -> UserInfo:
        if team is not None:
            await self.team(tenant, team)  # a team of the same tenant, or not found
        row = DirectoryUser(
            tenant=_key(tenant), user_id=user_id, team=team, role=role, tier=tier,
            created_at=datetime.now(UTC),
        )  # fmt: skip
        _set_budgets(row, budgets)
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise AlreadyExists(f"a user {user_id!r} exists already") from None
        self._changed()
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
        **budgets: object,
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
            _set_budgets(row, budgets)
        self._changed()
        return await self.user(tenant, user_id)

    async def delete_user(self, tenant: str | None, user_id: str) -> UserInfo:
        async with self.sessions.begin() as session:
            row = await session.get(DirectoryUser, (_key(tenant), user_id))
            if row is None:
                raise UserNotFound(f"no user {user_id[:64]!r}")
            info = _user(row)
            await session.delete(row)
        self._changed()
        return info


def _optional(value: object) -> str | None:
    assert value is None or isinstance(value, str)
    return value


def _set_budgets(row: Budgeted, budgets: dict[str, object]) -> None:
    """Set the budgets named (``None`` clears one); a name that is no budget is a bug."""
    for name, value in budgets.items():
        if name not in BUDGETS:
            raise TypeError(f"{name!r} is not a budget")
        if value is UNCHANGED:
            continue
        assert value is None or isinstance(value, int | float)
        setattr(row, name, value)


def _budgets_of(row: Budgeted) -> tuple[int | None, int | None, float | None]:
    return row.requests_per_minute, row.tokens_per_month, row.cost_per_month_usd


def _team(row: Team) -> TeamInfo:
    return TeamInfo(_tenant(row.tenant), row.name, row.tier, row.created_at, *_budgets_of(row))


def _user(row: DirectoryUser) -> UserInfo:
    return UserInfo(
        _tenant(row.tenant), row.user_id, row.team, row.role, row.tier, row.created_at,
        *_budgets_of(row),
    )  # fmt: skip
