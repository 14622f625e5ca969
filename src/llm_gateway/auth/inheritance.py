"""What a caller inherits from the directory: a tier, a team and a role their credential
does not name, and their own, their team's and their tenant's budgets.

The order, for a credential that has been verified (API key, the gateway's JWT, an
OIDC token, an introspected token):

- **tier**: the credential's own (it is the more specific: a key made for a tier keeps
  it, as does an issuer's ``default_tier`` in ``identity.yaml``); else the caller's
  user record's (tenant, user id); else their team's (the credential's team, else the
  user record's); else their tenant's record's; else none, which the limiter and the
  policy treat as today (``rate_limits.yaml``'s ``default_tier``).
- **team**: the credential's own; else the user record's.
- **role**: the credential's own whenever it carries a role claim (``role_claimed``;
  API keys always do), so a directory lookup never changes, let alone raises, the role
  of a credential that names one; only a token with no role claim at all takes the
  user record's role instead of the default one.
- **budgets** (:meth:`Inheritance.limits`, for the limiter): the user record's are the
  user scope's limits over their tier's, the team's and the tenant's over
  ``rate_limits.yaml``'s entries for them; each is read in the one lookup the limiter
  makes per request (user record, resolved team, tenant: one session).

This runs on every request, so the answers are kept in process
(:class:`Inheritance`): for ``DIRECTORY_CACHE_SECONDS`` each, at most
``CACHE_LIMIT`` of them (the oldest go first), "the directory keeps nothing" as
well. A change through this process's :class:`~.directory.Directory` forgets all
of them at once (changes are rare, and a team's tier reaches every member); another
process sees it within the TTL. The reads are SQLAlchemy async, never blocking the
event loop. When the database does not answer, the caller keeps their credential's
own attributes (no directory tier: the default tier; no directory budgets: the
file's), the trouble is logged at most every 30 seconds, and that answer is kept
for the TTL too, so a dead database is not asked again on every request: the
directory refines identities, it must not take the gateway down with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from llm_gateway.auth.directory import BUDGETS, Budgeted, Directory
from llm_gateway.auth.principal import Principal
from llm_gateway.config.limits import Limits

__all__ = ["CACHE_LIMIT", "NO_LIMITS", "Inheritance", "Inherited", "ScopeLimits", "TtlCache"]

log = logging.getLogger(__name__)

CACHE_LIMIT = 10_000  # entries per cache; a full cache drops its oldest entry
_QUIET_S = 30.0  # database trouble is logged at most this often
_TROUBLE = (SQLAlchemyError, OSError, TimeoutError)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded map whose entries live ``ttl_s`` (0: nothing is kept).

    ``generation`` counts the clearings: an answer read from the database before a
    clearing must not be stored after it (it may predate the change that cleared).
    :meth:`load` reads a missing entry once however many callers miss it together:
    when an entry expires under load, every request in flight misses it at once,
    and one database read must serve them all."""

    def __init__(
        self, ttl_s: float, limit: int = CACHE_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self.clock = clock
        self.generation = 0
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` when a live entry is kept, else ``(False, None)``."""
        entry = self._live(key)
        return (False, None) if entry is None else (True, entry[1])

    def _live(self, key: K) -> tuple[float, V] | None:
        """The entry for ``key`` while it lives (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry[0] >= self.ttl_s:
            del self._entries[key]
            return None
        return entry

    def put(self, key: K, value: V, generation: int) -> None:
        if self.ttl_s <= 0 or generation != self.generation:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self.limit:
            del self._entries[next(iter(self._entries))]  # the oldest: dicts keep order
        self._entries[key] = (self.clock(), value)

    async def load(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """The live entry for ``key``, else ``read()``'s answer, kept; callers that miss
        while a read is on its way wait for that read instead of starting their own."""
        entry = self._live(key)
        if entry is not None:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)  # a caller giving up must not cancel it
        pending = self._loading[key] = asyncio.get_running_loop().create_future()
        generation = self.generation
        try:
            value = await read()
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: nobody may be waiting
            raise
        else:
            pending.set_result(value)
            self.put(key, value, generation)
            return value
        finally:
            del self._loading[key]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class Inherited:
    """What the directory gives a (tenant, user, credential's team): ``None``s for nothing."""

    tier: str | None = None
    team: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """A tenant's, a team's and a user's budgets from the directory (``None``: none set)."""

    tenant: Limits | None = None
    team: Limits | None = None
    user: Limits | None = None


_NOTHING = Inherited()
#: The one answer for a caller the directory sets no budget on (the limiter tells it by
#: identity, without looking into it).
NO_LIMITS = ScopeLimits()


class Inheritance:
    """The directory's answers for the authenticate stage and the limiter, cached."""

    def __init__(
        self,
        directory: Directory,
        ttl_s: float,
        *,
        limit: int = CACHE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._identities: TtlCache[tuple[str | None, str, str | None], Inherited] = TtlCache(
            ttl_s, limit, clock
        )
        self._limits: TtlCache[tuple[str | None, str, str | None], ScopeLimits] = TtlCache(
            ttl_s, limit, clock
        )
        self._quiet_until = 0.0
        directory.on_change.append(self.invalidate)

    def invalidate(self) -> None:
        """Forget every answer (a change through this process's directory)."""
        self._identities.clear()
        self._limits.clear()

    async def resolve(self, principal: Principal) -> Principal:
        """``principal`` with the tier, team and role it inherits (itself when none)."""
        found = await self.inherited(principal.tenant, principal.user_id, principal.team)
        if found is _NOTHING:
            return principal
        tier = principal.tier if principal.tier is not None else found.tier
        team = principal.team if principal.team is not None else found.team
        role = principal.role if principal.role_claimed or found.role is None else found.role
        if (tier, team, role) == (principal.tier, principal.team, principal.role):
            return principal
        return replace(principal, tier=tier, team=team, role=role)

    async def inherited(self, tenant: str | None, user_id: str, team: str | None) -> Inherited:
        return await self._identities.load(
            (tenant, user_id, team), lambda: self._read_inherited(tenant, user_id, team)
        )

    async def _read_inherited(
        self, tenant: str | None, user_id: str, team: str | None
    ) -> Inherited:
        try:
            lineage = await self.directory.lineage(tenant, user_id, team)
        except _TROUBLE as exc:
            self._trouble(exc)
            return _NOTHING
        user = lineage.user
        tier = next(
            (
                row.tier
                for row in (user, lineage.team, lineage.tenant)
                if row is not None and row.tier is not None
            ),
            None,
        )
        found = Inherited(
            tier=tier,
            team=user.team if user is not None else None,
            role=user.role if user is not None else None,
        )
        return _NOTHING if found == _NOTHING else found  # one shared "nothing": see resolve()

    async def limits(self, tenant: str | None, user_id: str, team: str | None) -> ScopeLimits:
        """The budgets the directory sets on ``tenant``, on ``team`` (the caller's, as
        resolved) and on the user ``user_id`` of ``tenant``, for the limiter. A caller
        the directory keeps nothing on gets the one shared :data:`NO_LIMITS`, kept like
        any answer: after the first request, a dictionary look-up."""
        return await self._limits.load(
            (tenant, user_id, team), lambda: self._read_limits(tenant, user_id, team)
        )

    async def _read_limits(self, tenant: str | None, user_id: str, team: str | None) -> ScopeLimits:
        try:
            rows = await self.directory.lineage(tenant, user_id, team)
        except _TROUBLE as exc:
            self._trouble(exc)
            return NO_LIMITS
        found = ScopeLimits(_limits_of(rows.tenant), _limits_of(rows.team), _limits_of(rows.user))
        return NO_LIMITS if found == NO_LIMITS else found

    def _trouble(self, exc: BaseException) -> None:
        """Log once per interval: a dead database must not flood the logs (no secrets:
        the exception's type only, a driver's message may carry the connection string)."""
        moment = time.monotonic()
        if moment >= self._quiet_until:
            self._quiet_until = moment + _QUIET_S
            log.warning(
                "directory: the database failed (%s): callers keep their credential's own "
                "tier, team and role, and the file's limits",
                type(exc).__name__,
            )


def _limits_of(row: Budgeted | None) -> Limits | None:
    """A row's budgets as a scope's limits; ``None`` when it sets none."""
    if row is None:
        return None
    values = {name: getattr(row, name) for name in BUDGETS}
    if all(v is None for v in values.values()):
        return None
    return Limits.model_validate({k: v for k, v in values.items() if v is not None})
