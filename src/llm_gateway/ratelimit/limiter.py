"""Rate limits and budgets on the shared state store, exact across replicas.

Every request is checked against each of its scopes (user, API key, client
address, tenant, team) in one atomic script (:data:`~.script.ADMIT`): a sliding
log per rate, a counter per token or cost budget. Why a sliding log and not a
two-window counter: it is exact (no more than N requests in *any* 60 seconds,
where the weighted two-window estimate can admit up to half a window more
after a burst at a window's end), and it tells a refused caller exactly when a
slot frees. Its cost is memory: one entry per admitted request per scope, at
most the limit, dropped as they age out.

Budgets are reserved before the call with an estimate (prompt tokens plus
``max_tokens``, or the candidate models' ``default_max_tokens``; the most
expensive candidate's price for dollars), so concurrent requests through
different replicas cannot overspend together, and settled with the real use
once the request is recorded (:class:`BudgetRecorder`), streams at their end or
when the client goes away. A reservation whose settlement is lost (a replica
killed mid-request) stays counted until the month ends: budgets err towards
refusing, never towards overspending.

A team's or tenant's budgets kept in the directory (the admin API's, read through
``directory``, cached by :class:`~llm_gateway.auth.inheritance.Inheritance`) are that
scope's limits exactly as a ``scopes: team: <id>:`` entry of ``rate_limits.yaml``
would be, and they win over it: each limit the directory sets replaces the file's
entry for that id (or its ``default``), the limits it does not set are the file's.
A user record's budgets are the user scope's the same way, over the caller's tier
(its queue and the limits the record does not set stay the tier's).
The directory is the runtime admin surface, the file the deployment's baseline.

When the store does not answer within ``timeout_s``, each scope fails open or
closed as configured (closed for a scope with a budget, open for plain rates,
unless ``on_store_error`` says otherwise); the trouble is logged once per
interval, not per request.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from llm_gateway.auth.inheritance import NO_LIMITS, ScopeLimits
from llm_gateway.auth.principal import Principal
from llm_gateway.config.limits import Limits, LimitsFile, Queue
from llm_gateway.errors import (
    CostBudgetExceeded,
    LimitsUnavailable,
    RateLimited,
    TokenBudgetExceeded,
)
from llm_gateway.ratelimit.script import ADMIT, ADMITTED, LEAVE, QUEUED, SETTLE
from llm_gateway.records import RequestRecord
from llm_gateway.settings import LimitSettings
from llm_gateway.state import Arg, Reply, Script, Store, StoreError

__all__ = ["Admission", "BudgetRecorder", "Limiter", "Window"]

log = logging.getLogger(__name__)

WINDOW_MS = 60_000
MICRO = 1_000_000  # cost budgets count micro-dollars, so that the counters are integers
_QUIET_S = 30.0  # store trouble is logged at most this often
_POLL_S = (0.01, 0.25)  # a queued request looks again after this long, at least and at most
_MERGED_LIMIT = 4096  # the directory's limits over the file's, kept resolved

#: A tenant's, a team's and a user's limits from the directory (``(tenant, user id, team)``
#: of the caller).
DirectoryLimits = Callable[[str | None, str, str | None], Awaitable[ScopeLimits]]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A scope's limits settled from the file and the settings, once, at start-up."""

    rate: int | None  # requests per minute; None: no limit
    tokens: int | None  # per month
    micro_usd: int | None  # per month
    queue: Queue | None
    fail_closed: bool

    @property
    def counted(self) -> bool:
        return self.rate is not None or self.tokens is not None or self.micro_usd is not None


@dataclass(frozen=True, slots=True)
class Scope:
    """One scope a request counts against: whose (``kind``, ``id``), and its limits.

    ``counter`` is the name its counters are kept under: a user's and a team's are
    their tenant's (see :func:`within`), so that two tenants' ``alice`` or ``ops``
    never share a rate or a budget; ``None`` is the ``id`` itself."""

    kind: str  # user, key, ip, tenant, team
    id: str
    limits: Resolved
    counter: str | None = None

    @property
    def counted_as(self) -> str:
        return self.id if self.counter is None else self.counter

    @property
    def rate(self) -> int | None:
        return self.limits.rate

    @property
    def tokens(self) -> int | None:
        return self.limits.tokens

    @property
    def fail_closed(self) -> bool:
        return self.limits.fail_closed


@dataclass(frozen=True, slots=True)
class Window:
    """A limit as the rate-limit headers tell it: of the tightest scope of its kind."""

    scope: str
    limit: int
    remaining: int
    reset_s: float


@dataclass(slots=True)
class Admission:
    """What the limiter found: the windows for the headers, and the refusal if any."""

    requests: Window | None = None
    tokens: Window | None = None
    queued_ms: float | None = None  # how long the request waited for a slot
    refusal: RateLimited | None = None  # set when the request may not go on


@dataclass(frozen=True, slots=True)
class _Budget:
    """One budget a request reserves on: ``amount`` of ``limit`` (tokens or micro-dollars)."""

    scope: Scope
    kind: Literal["tokens", "cost"]
    key: str
    limit: int
    amount: int


@dataclass(slots=True)
class _Plan:
    """One request's call of the admission script: the reply has a count per rate, then
    a use per budget, in this order."""

    rates: list[Scope] = field(default_factory=list)
    budgets: list[_Budget] = field(default_factory=list)
    queue: tuple[int, Queue, str] | None = None  # (rate index, queue, key)

    @property
    def keys(self) -> list[str]:
        return [f"r:{s.kind}:{s.counted_as}" for s in self.rates] + [b.key for b in self.budgets]


class Limiter:
    def __init__(
        self,
        file: LimitsFile,
        settings: LimitSettings,
        store: Store,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
        directory: DirectoryLimits | None = None,
    ) -> None:
        self.file = file
        self.directory = directory
        self.settings = settings
        self.store = store
        self.timeout_s = timeout_s
        self.clock = clock
        self._reserved: dict[str, list[_Budget]] = {}
        self._quiet_until = 0.0
        # Every scope's limits, resolved here so that a request only looks them up.
        per_user = settings.per_user
        self._tiers = {
            name: _resolve(tier, per_user, tier.queue) for name, tier in file.tiers.items()
        }
        fallback = file.tiers.get(file.default_tier) if file.default_tier else None
        self._fallback = fallback
        self._no_tier = _resolve(
            fallback or Limits(), per_user, fallback.queue if fallback else None
        )
        tables = file.scopes
        self._tables: list[tuple[str, Resolved, dict[str, Resolved]]] = []
        # The file's own entries of the scopes the directory may set, and their default
        # rate, for composing the directory's limits over them (see _compose).
        self._raw: dict[str, tuple[int, dict[str, Limits]]] = {
            "tenant": (settings.per_tenant, tables.tenant),
            "team": (0, tables.team),
        }
        self._merged: dict[tuple[str, str, Limits], Resolved] = {}
        for kind, table, default_rate in (
            ("key", tables.key, settings.per_key),
            ("ip", tables.ip, settings.per_ip),
            ("tenant", tables.tenant, settings.per_tenant),
            ("team", tables.team, 0),
        ):
            base = table.get("default", Limits())
            listed = {
                ident: _resolve(limits.over(base), default_rate, None)
                for ident, limits in table.items()
                if ident != "default"
            }
            self._tables.append((kind, _resolve(base, default_rate, None), listed))

    # Scopes

    def scopes(
        self,
        principal: Principal,
        client_ip: str | None,
        directory: ScopeLimits | None = None,
    ) -> list[Scope]:
        """The scopes a request of ``principal`` from ``client_ip`` counts against
        (``directory``: the tenant's, team's and user's limits the directory sets)."""
        own = None if directory is NO_LIMITS else directory  # the usual case, told at once
        tier = principal.tier or ""
        user = self._tiers.get(tier, self._no_tier)
        if own is not None and own.user is not None:
            user = self._over("user", tier, own.user)
        tenant = principal.tenant
        found = [Scope("user", principal.user_id, user, within(tenant, principal.user_id))]
        idents = (principal.key_id, client_ip, principal.tenant, principal.team)
        kept = {"tenant": own.tenant, "team": own.team} if own is not None else {}
        for (kind, base, listed), ident in zip(self._tables, idents, strict=True):
            if ident is not None:
                over = kept.get(kind)
                limits = listed.get(ident, base) if over is None else self._over(kind, ident, over)
                if limits.counted:
                    counter = within(tenant, ident) if kind == "team" else None
                    found.append(Scope(kind, ident, limits, counter))
        return found

    def _over(self, kind: str, ident: str, limits: Limits) -> Resolved:
        """The directory's ``limits`` for a tenant, team or user over the file's (a user's
        ``ident`` is their tier's name), resolved once per distinct set of limits."""
        key = (kind, ident, limits)
        resolved = self._merged.get(key)
        if resolved is None:
            resolved = self._compose(kind, ident, limits)
            if len(self._merged) >= _MERGED_LIMIT:
                self._merged.clear()
            self._merged[key] = resolved
        return resolved

    def _compose(self, kind: str, ident: str, limits: Limits) -> Resolved:
        if kind == "user":  # over the tier, or the default tier as for a caller of none
            tier = self.file.tiers.get(ident, self._fallback)
            if tier is None:
                return _resolve(limits, self.settings.per_user, None)
            return _resolve(limits.over(tier), self.settings.per_user, tier.queue)
        default_rate, table = self._raw[kind]
        base = table.get("default", Limits())
        file = table[ident].over(base) if ident in table and ident != "default" else base
        return _resolve(limits.over(file), default_rate, None)

    async def _scopes(self, principal: Principal, client_ip: str | None) -> list[Scope]:
        """:meth:`scopes`, with the directory's limits when there is a directory (asked for
        every caller: a user record may exist without a tenant or a team; one answer,
        kept, for a caller the directory keeps nothing on)."""
        kept = None
        if self.directory is not None:
            kept = await self.directory(principal.tenant, principal.user_id, principal.team)
        return self.scopes(principal, client_ip, kept)

    # Admission

    async def admit(
        self,
        principal: Principal,
        client_ip: str | None,
        *,
        request_id: str,
        tokens: int,
        cost_usd: float,
    ) -> Admission:
        """Count the request against every scope, or find the first full one (``refusal``).

        ``tokens`` and ``cost_usd`` are the estimates reserved on the budgets.
        Raises :class:`LimitsUnavailable` when the store fails and a scope fails closed.
        """
        scopes = await self._scopes(principal, client_ip)
        now = self.clock()
        plan = _plan(scopes, now, tokens=tokens, micro_usd=math.ceil(cost_usd * MICRO))
        if not plan.keys:
            return Admission()
        started = now
        deadline = now + (plan.queue[1].max_wait_ms / 1000 if plan.queue else 0)
        while True:
            reply = await self._run(plan, scopes, request_id, now, peek=False)
            if reply is None:
                return Admission()  # the store failed and every scope fails open
            verdict, index, wait_ms = reply[0], reply[1], reply[2]
            if verdict == QUEUED and now < deadline:
                low, high = _POLL_S
                pause = min(max(wait_ms / 1000, low), high, deadline - now)
                await self._wait(plan, request_id, pause)
                now = self.clock()
                continue
            admission = _windows(plan, reply[3:], now)
            if plan.queue is not None and now > started:
                admission.queued_ms = round((now - started) * 1000, 1)
            if verdict == ADMITTED:
                self._reserve(request_id, plan)
                return admission
            if plan.queue is not None:
                await self._leave(plan.queue[2], request_id)
            admission.refusal = _refusal(plan, index, wait_ms, reply[3:], now)
            if index <= len(plan.rates):  # the refusing rate is the one the headers tell
                scope = plan.rates[index - 1]
                assert scope.rate is not None
                admission.requests = Window(scope.kind, scope.rate, 0, max(wait_ms, 1) / 1000)
            return admission

    async def _wait(self, plan: _Plan, request_id: str, seconds: float) -> None:
        """Wait in the queue; a request that goes away meanwhile gives up its place."""
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            assert plan.queue is not None
            await asyncio.shield(self._leave(plan.queue[2], request_id))
            raise

    async def peek(self, principal: Principal, client_ip: str | None) -> list[dict[str, object]]:
        """The caller's scopes as they stand, counting nothing (``GET /api/v1/limits``)."""
        scopes = await self._scopes(principal, client_ip)
        now = self.clock()
        plan = _plan(scopes, now, tokens=0, micro_usd=0)
        reply = await self._run(plan, scopes, "", now, peek=True) if plan.keys else None
        counts = reply[3:] if reply is not None else None
        return [_scope_json(scope, plan, counts, now) for scope in scopes]

    async def settle(self, request_id: str, tokens_used: int, cost_usd: float) -> None:
        """Replace a request's reservations with its real use (nothing for unreserved ones)."""
        budgets = self._reserved.pop(request_id, None)
        if budgets is None:
            return
        real = {"tokens": tokens_used, "cost": math.ceil(cost_usd * MICRO)}
        changes = [real[b.kind] - b.amount for b in budgets]
        try:
            await self._store_run(SETTLE, [b.key for b in budgets], changes)
        except (StoreError, TimeoutError) as exc:
            self._trouble(exc, "budgets not settled (their reservations stay counted)")

    async def _run(
        self, plan: _Plan, scopes: Sequence[Scope], member: str, now: float, *, peek: bool
    ) -> list[int] | None:
        queue_index, queue_wait, queue_size, keys = 0, 0, 0, plan.keys
        if plan.queue is not None:
            index, queue, key = plan.queue
            queue_index, queue_wait, queue_size = index + 1, queue.max_wait_ms, queue.max_size
            keys = [*keys, key]
        args: list[int | str] = [
            int(now * 1000), WINDOW_MS, member, len(plan.rates), len(plan.budgets),
            queue_index, queue_wait, queue_size, _budget_ttl_ms(now), int(peek),
            *(s.rate or 0 for s in plan.rates),
            *(n for b in plan.budgets for n in (b.limit, b.amount)),
        ]  # fmt: skip
        try:
            counts = _integers(await self._store_run(ADMIT, keys, args), 3 + len(plan.keys))
        except (StoreError, TimeoutError) as exc:
            closed = sorted({s.kind for s in scopes if s.fail_closed})
            self._trouble(
                exc, f"failing closed for {', '.join(closed)}" if closed else "failing open"
            )
            if closed and not peek:
                raise LimitsUnavailable(
                    "the gateway cannot check this request's budget right now",
                    retry_after=1,
                    details={"scopes": closed},
                ) from None
            return None
        return counts

    async def _store_run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        """Run a script, giving up after ``timeout_s`` (the in-process store never waits)."""
        if self.store.never_waits:
            return await self.store.run(script, keys, args)
        async with asyncio.timeout(self.timeout_s):
            return await self.store.run(script, keys, args)

    def _reserve(self, request_id: str, plan: _Plan) -> None:
        if plan.budgets:
            self._reserved[request_id] = plan.budgets

    async def _leave(self, queue_key: str, member: str) -> None:
        try:
            await self._store_run(LEAVE, [queue_key], [member])
        except (StoreError, TimeoutError) as exc:
            self._trouble(exc, "a queued request's place expires by itself")

    def _trouble(self, exc: BaseException, consequence: str) -> None:
        """Log store trouble once per interval: a dead Redis must not flood the logs."""
        moment = time.monotonic()
        if moment >= self._quiet_until:
            self._quiet_until = moment + _QUIET_S
            problem = str(exc) or type(exc).__name__
            log.warning("rate limits: the state store failed (%s): %s", problem, consequence)


class BudgetRecorder:
    """Settles each request's budget reservations with its recorded tokens and cost."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def record(self, record: RequestRecord) -> None:
        await self.limiter.settle(record.request_id, record.tokens_used, record.cost_usd)


# --- building and reading the script's call ---------------------------------


def _integers(reply: Reply, length: int) -> list[int]:
    """The admission script's reply, which must be ``length`` integers (else a store error)."""
    if isinstance(reply, list) and len(reply) == length:
        found = [x for x in reply if isinstance(x, int)]
        if len(found) == length:
            return found
    raise StoreError("the admission script answered in an unexpected shape")


def _resolve(limits: Limits, default_rate: int, queue: Queue | None) -> Resolved:
    """A scope's limits from the file, with the settings' rate where the file sets none."""
    rate, tokens, dollars = (
        limits.requests_per_minute, limits.tokens_per_month, limits.cost_per_month_usd,
    )  # fmt: skip
    budgeted = isinstance(tokens, int) or isinstance(dollars, int | float)
    fail = limits.on_store_error
    return Resolved(
        rate=(default_rate or None) if rate is None else _count(rate),
        tokens=_count(tokens),
        micro_usd=round(dollars * MICRO) if isinstance(dollars, int | float) else None,
        queue=queue,
        fail_closed=fail == "closed" or (fail is None and budgeted),
    )


def within(tenant: str | None, ident: str) -> str | None:
    """The counter name of a tenant's user or team ``ident`` (None: no tenant, the id
    itself). The tenant is percent-encoded, so its ``/`` never reads as the separator:
    tenant ``a/b`` with user ``c`` and tenant ``a`` with user ``b/c`` stay apart."""
    return None if tenant is None else f"{quote(tenant, safe='')}/{ident}"


def _count(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None


def _plan(scopes: Sequence[Scope], now: float, *, tokens: int, micro_usd: int) -> _Plan:
    plan = _Plan()
    month = _month(int(now // 3600))[0]
    for scope in scopes:
        if scope.rate is not None:
            if scope.limits.queue is not None:
                queue_key = f"q:{scope.kind}:{scope.counted_as}"
                plan.queue = (len(plan.rates), scope.limits.queue, queue_key)
            plan.rates.append(scope)
    for scope in scopes:
        if scope.tokens is not None:
            key = f"t:{scope.kind}:{month}:{scope.counted_as}"
            plan.budgets.append(_Budget(scope, "tokens", key, scope.tokens, tokens))
        if scope.limits.micro_usd is not None:
            key = f"c:{scope.kind}:{month}:{scope.counted_as}"
            plan.budgets.append(_Budget(scope, "cost", key, scope.limits.micro_usd, micro_usd))
    return plan


def _month_end(now: float) -> float:
    """The next calendar month's first second (UTC), as a timestamp."""
    return _month(int(now // 3600))[1]


@functools.lru_cache(maxsize=8)
def _month(hour: int) -> tuple[str, float]:
    """The calendar month (UTC) of an hour since the epoch: its name and its end.

    Months begin on the hour, so every moment of an hour has its hour's month;
    the cache makes this free for every request but the first of each hour.
    """
    day = datetime.fromtimestamp(hour * 3600, UTC)
    days = calendar.monthrange(day.year, day.month)[1]
    first = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return day.strftime("%Y-%m"), first.timestamp() + days * 86_400


def _budget_ttl_ms(now: float) -> int:
    """A month's budget lives until the month ends, and a day more for clocks that differ."""
    return math.ceil((_month_end(now) - now + 86_400) * 1000)


def _windows(plan: _Plan, counts: Sequence[int], now: float) -> Admission:
    """The tightest rate and the tightest token budget, for the response's headers."""
    admission = Admission()
    for i, scope in enumerate(plan.rates):
        assert scope.rate is not None
        window = Window(scope.kind, scope.rate, max(0, scope.rate - counts[i]), WINDOW_MS / 1000)
        if admission.requests is None or window.remaining < admission.requests.remaining:
            admission.requests = window
    reset = _month_end(now) - now
    for budget, used in zip(plan.budgets, counts[len(plan.rates) :], strict=True):
        if budget.kind == "tokens":
            left = max(0, budget.limit - used)
            if admission.tokens is None or left < admission.tokens.remaining:
                admission.tokens = Window(budget.scope.kind, budget.limit, left, reset)
    return admission


def _refusal(
    plan: _Plan, index: int, wait_ms: int, counts: Sequence[int], now: float
) -> RateLimited:
    if index <= len(plan.rates):
        scope = plan.rates[index - 1]
        return RateLimited(
            f"rate limit reached for this {_named(scope.kind)}: {scope.rate} requests per minute",
            retry_after=max(wait_ms, 1) / 1000,
            details={"scope": scope.kind, "limit": scope.rate, "window": "minute"},
        )
    budget = plan.budgets[index - len(plan.rates) - 1]
    scope, limit, asked = budget.scope, budget.limit, budget.amount
    used = counts[index - 1]
    reset = _month_end(now) - now
    if budget.kind == "tokens":
        return TokenBudgetExceeded(
            f"this request's estimated {asked} tokens would exceed the monthly token budget "
            f"of this {_named(scope.kind)} ({used} of {limit} used)",
            retry_after=reset,
            details={"scope": scope.kind, "limit": limit, "used": used, "requested": asked},
        )
    return CostBudgetExceeded(
        f"this request's estimated cost would exceed the monthly cost budget of this "
        f"{_named(scope.kind)} (${used / MICRO:.2f} of ${limit / MICRO:.2f} used)",
        retry_after=reset,
        details={"scope": scope.kind, "limit_usd": limit / MICRO, "used_usd": used / MICRO},
    )


def _named(kind: str) -> str:
    return {"key": "API key", "ip": "client address"}.get(kind, kind)


def _scope_json(
    scope: Scope, plan: _Plan, counts: Sequence[int] | None, now: float
) -> dict[str, object]:
    """One scope's windows and budgets for ``GET /api/v1/limits`` (``None``: store down)."""
    entry: dict[str, object] = {"scope": scope.kind, "id": scope.id}
    used_by = dict(zip(plan.keys, counts, strict=True)) if counts is not None else {}
    for rated in plan.rates:
        if rated is scope:
            used = used_by.get(f"r:{scope.kind}:{scope.counted_as}")
            entry["requests_per_minute"] = _state(scope.rate, used, WINDOW_MS / 1000)
    reset = _month_end(now) - now
    for budget in plan.budgets:
        if budget.scope is scope:
            used = used_by.get(budget.key)
            if budget.kind == "tokens":
                entry["tokens_per_month"] = _state(budget.limit, used, reset)
            else:
                spent = used / MICRO if used is not None else None
                entry["cost_per_month_usd"] = _state(budget.limit / MICRO, spent, reset)
    return entry


def _state(limit: float | None, used: float | None, reset_s: float) -> dict[str, object]:
    remaining = None if used is None or limit is None else max(0, limit - used)
    return {"limit": limit, "used": used, "remaining": remaining, "reset_seconds": round(reset_s)}
