"""The limiter on both stores (memory and a real Redis), with a clock the tests move.

The sliding log prunes by the limiter's own clock (passed to the script), so
the same controlled time drives both backends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from llm_gateway.auth.inheritance import NO_LIMITS, ScopeLimits
from llm_gateway.auth.principal import Principal
from llm_gateway.config.limits import Limits, LimitsFile
from llm_gateway.errors import (
    CostBudgetExceeded,
    LimitsUnavailable,
    RateLimited,
    TokenBudgetExceeded,
)
from llm_gateway.ratelimit import Admission, Limiter
from llm_gateway.settings import LimitSettings
from llm_gateway.state import MemoryStore, Reply, Script, Store, StoreError, StoreUnavailable
from llm_gateway.state.script import Arg, Ops
from tests.state.cases import StoreCase

ALICE = Principal("alice", "user", tier="premium", tenant="acme", team="ml", key_id="k1")
START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(
    store: Store, file: Mapping[str, object], clock: Clock | None = None, **settings: object
) -> Limiter:
    defaults: dict[str, object] = {"per_user": 0, "per_tenant": 0}
    return Limiter(
        LimitsFile.model_validate(file),
        LimitSettings(**{**defaults, **settings}),  # type: ignore[arg-type]
        store,
        timeout_s=2.0,
        clock=clock or Clock(),
    )


def tier(**limits: object) -> dict[str, object]:
    return {"tiers": {"premium": limits}}


async def admit(
    lim: Limiter,
    who: Principal = ALICE,
    *,
    tokens: int = 0,
    cost: float = 0.0,
    request_id: str | None = None,
) -> Admission:
    rid = request_id or f"r{time.monotonic_ns()}"
    return await lim.admit(who, "10.0.0.1", request_id=rid, tokens=tokens, cost_usd=cost)


def refusals(admissions: Sequence[Admission]) -> list[RateLimited]:
    return [a.refusal for a in admissions if a.refusal is not None]


async def test_exactly_the_limit_of_a_concurrent_burst_passes(store_case: StoreCase) -> None:
    lim = limiter(store_case.store, tier(requests_per_minute=5))
    results = await asyncio.gather(*(admit(lim) for _ in range(12)))
    refused = refusals(results)
    assert len(results) - len(refused) == 5
    assert len(refused) == 7
    assert {r.code for r in refused} == {"rate_limited"}
    assert all(r.details["scope"] == "user" and r.retry_after for r in refused)


async def test_the_window_slides(store_case: StoreCase) -> None:
    clock = Clock()
    lim = limiter(store_case.store, tier(requests_per_minute=5), clock)
    for _ in range(3):
        assert (await admit(lim)).refusal is None
    clock.now += 40
    for _ in range(2):
        assert (await admit(lim)).refusal is None
    refused = (await admit(lim)).refusal
    assert refused is not None
    assert refused.retry_after == pytest.approx(20)  # the first three age out at 60 s
    clock.now += 21  # t=61: the three of t=0 are gone, the two of t=40 still count
    passed = [await admit(lim) for _ in range(4)]
    assert [a.refusal is None for a in passed] == [True, True, True, False]
    last = passed[-1].refusal
    assert last is not None  # a fixed one-minute bucket would have let all four in
    assert last.retry_after == pytest.approx(39)


async def test_windows_for_the_headers_name_the_tightest_scope(store_case: StoreCase) -> None:
    file = {**tier(requests_per_minute=10), "scopes": {"tenant": {"default": {
        "requests_per_minute": 3}}}}  # fmt: skip
    lim = limiter(store_case.store, file)
    first = await admit(lim)
    assert first.requests is not None
    assert (first.requests.scope, first.requests.limit, first.requests.remaining) == (
        "tenant", 3, 2,
    )  # fmt: skip
    await admit(lim)
    await admit(lim)
    refused = await admit(lim)
    assert refused.refusal is not None
    assert refused.refusal.details["scope"] == "tenant"
    assert refused.requests is not None
    assert refused.requests.remaining == 0


async def test_a_token_budget_refuses_the_request_that_would_cross_it(
    store_case: StoreCase,
) -> None:
    lim = limiter(store_case.store, tier(tokens_per_month=1000))
    assert (await admit(lim, tokens=400, request_id="a")).refusal is None
    assert (await admit(lim, tokens=400, request_id="b")).refusal is None
    crossing = (await admit(lim, tokens=400, request_id="c")).refusal
    assert isinstance(crossing, TokenBudgetExceeded)
    assert crossing.details == {"scope": "user", "limit": 1000, "used": 800, "requested": 400}
    await lim.settle("a", 100, 0.0)  # a used 100 of its 400
    fits = await admit(lim, tokens=400, request_id="d")
    assert fits.refusal is None
    assert fits.tokens is not None
    assert fits.tokens.remaining == 1000 - 100 - 400 - 400


async def test_concurrent_reservations_cannot_overspend(store_case: StoreCase) -> None:
    lim = limiter(store_case.store, tier(tokens_per_month=1000))
    results = await asyncio.gather(*(admit(lim, tokens=300) for _ in range(10)))
    assert len(results) - len(refusals(results)) == 3


async def test_a_cost_budget_reserves_and_settles(store_case: StoreCase) -> None:
    lim = limiter(store_case.store, {"tiers": {"premium": {"cost_per_month_usd": 1.0}}})
    assert (await admit(lim, cost=0.45, request_id="a")).refusal is None
    assert (await admit(lim, cost=0.45, request_id="b")).refusal is None
    over = (await admit(lim, cost=0.45, request_id="c")).refusal
    assert isinstance(over, CostBudgetExceeded)
    assert over.details["used_usd"] == pytest.approx(0.9)
    await lim.settle("a", 10, 0.05)
    await lim.settle("b", 10, 0.05)
    assert (await admit(lim, cost=0.45)).refusal is None


async def test_a_failed_request_releases_its_reservation(store_case: StoreCase) -> None:
    lim = limiter(store_case.store, tier(tokens_per_month=500))
    assert (await admit(lim, tokens=500, request_id="a")).refusal is None
    assert (await admit(lim, tokens=1)).refusal is not None
    await lim.settle("a", 0, 0.0)
    assert (await admit(lim, tokens=500)).refusal is None


async def test_budgets_start_again_with_the_month(store_case: StoreCase) -> None:
    clock = Clock(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp())
    lim = limiter(store_case.store, tier(tokens_per_month=100), clock)
    assert (await admit(lim, tokens=100)).refusal is None
    assert (await admit(lim, tokens=1)).refusal is not None
    clock.now += 120  # January
    assert (await admit(lim, tokens=100)).refusal is None


async def test_every_scope_counts_and_each_can_refuse(store_case: StoreCase) -> None:
    file = {
        "tiers": {"premium": {"requests_per_minute": 100}},
        "scopes": {
            "key": {"k1": {"requests_per_minute": 2}},
            "team": {"default": {"tokens_per_month": 50}},
        },
    }
    lim = limiter(store_case.store, file, per_ip=3)
    other_key = Principal("bob", "user", tier="premium", key_id="k2")
    assert (await admit(lim)).refusal is None
    assert (await admit(lim)).refusal is None
    refused = (await admit(lim)).refusal
    assert refused is not None
    assert refused.details["scope"] == "key"
    assert (await admit(lim, other_key)).refusal is None  # same address, third request
    by_ip = (await admit(lim, other_key)).refusal
    assert by_ip is not None
    assert by_ip.details["scope"] == "ip"
    names = {s.kind for s in lim.scopes(ALICE, "10.0.0.1")}
    assert names == {"user", "key", "ip", "team"}  # no tenant limit is set (per_tenant=0)


async def test_two_tenants_users_and_teams_of_one_name_never_share_a_count(
    store_case: StoreCase,
) -> None:
    file = {
        "tiers": {"premium": {"requests_per_minute": 1, "tokens_per_month": 100}},
        "scopes": {"team": {"default": {"requests_per_minute": 1}}},
    }
    lim = limiter(store_case.store, file)
    other = Principal("alice", "user", tier="premium", tenant="globex", team="ml", key_id="k9")
    assert (await admit(lim, tokens=100)).refusal is None  # acme's alice, of acme's ml
    assert (await admit(lim, other, tokens=100)).refusal is None  # globex's: a count of its own
    refused = (await admit(lim, other)).refusal
    assert refused is not None  # each tenant's count holds by itself
    assert refused.details["scope"] in {"user", "team"}
    shown = await lim.peek(other, None)
    user = next(entry for entry in shown if entry["scope"] == "user")
    assert user["id"] == "alice"  # shown by its own id; counted within its tenant
    assert user["tokens_per_month"]["used"] == 100  # type: ignore[index]


def test_a_tenant_with_a_slash_cannot_reach_another_tenants_counter() -> None:
    lim = limiter(MemoryStore(), tier(requests_per_minute=5))
    one = lim.scopes(Principal("c", "user", tier="premium", tenant="a/b"), None)[0]
    two = lim.scopes(Principal("b/c", "user", tier="premium", tenant="a"), None)[0]
    alone = lim.scopes(Principal("c", "user", tier="premium"), None)[0]
    assert len({one.counted_as, two.counted_as, alone.counted_as}) == 3
    assert alone.counted_as == "c"  # without a tenant, as before


def test_a_caller_without_a_known_tier_gets_the_default_tier() -> None:
    file = {"tiers": {"free": {"requests_per_minute": 7}}, "default_tier": "free"}
    lim = limiter(MemoryStore(), file, per_user=100)
    for who in (Principal("x", "user"), Principal("y", "user", tier="gold")):
        (user,) = [s for s in lim.scopes(who, None) if s.kind == "user"]
        assert user.rate == 7
    without = limiter(MemoryStore(), {"tiers": {"free": {}}}, per_user=100)
    (user,) = without.scopes(Principal("x", "user", tier="gold"), None)
    assert (user.rate, user.tokens) == (100, None)


async def test_a_queued_request_waits_for_the_slot_first_come_first_served(
    store_case: StoreCase,
) -> None:
    # The clock is real time moved so that the first request's slot frees 0.3 s from now.
    offset = 0.0

    def clock() -> float:
        return time.time() + offset

    file = tier(requests_per_minute=1, queue={"max_wait_ms": 1500, "max_size": 5})
    lim = Limiter(
        LimitsFile.model_validate(file), LimitSettings(per_user=0, per_tenant=0),
        store_case.store, timeout_s=2.0, clock=clock,
    )  # fmt: skip
    assert (await admit(lim, request_id="first")).refusal is None
    offset = 59.7
    early = asyncio.create_task(admit(lim, request_id="early"))
    await asyncio.sleep(0.05)
    late = asyncio.create_task(admit(lim, request_id="late"))
    got_early, got_late = await asyncio.gather(early, late)
    assert got_early.refusal is None
    assert got_early.queued_ms is not None
    assert got_early.queued_ms >= 100
    assert got_late.refusal is not None  # its turn did not come within 1.5 s
    assert got_late.queued_ms is not None


class _Failing(MemoryStore):
    never_waits = False

    def __init__(self, error: StoreError | None = None, reply: Reply = None) -> None:
        super().__init__()
        self.error, self.reply = error, reply

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        if self.error is not None:
            raise self.error
        return self.reply


@pytest.mark.parametrize(
    "store",
    [_Failing(StoreUnavailable("Redis did not answer")), _Failing(reply=[b"odd"]),
     _Failing(reply=None), _Failing(reply=[0]), _Failing(reply=[0, 0, 0, 1, 2, 3])],
    ids=["unavailable", "wrong-shape", "nil", "too-short", "too-long"],
)  # fmt: skip
async def test_store_trouble_fails_open_for_rates_and_closed_for_budgets(store: Store) -> None:
    rates_only = limiter(store, tier(requests_per_minute=1))
    assert await admit(rates_only) == Admission()  # admitted, nothing counted or told
    budgeted = limiter(store, tier(requests_per_minute=1, tokens_per_month=10))
    with pytest.raises(LimitsUnavailable) as info:
        await admit(budgeted, tokens=1)
    assert info.value.status == 503
    assert info.value.details == {"scopes": ["user"]}
    forced_open = limiter(store, tier(tokens_per_month=10, on_store_error="open"))
    assert (await admit(forced_open, tokens=1)).refusal is None
    forced_closed = limiter(store, tier(requests_per_minute=1, on_store_error="closed"))
    with pytest.raises(LimitsUnavailable):
        await admit(forced_closed)


async def test_a_slow_store_is_given_up_after_the_timeout() -> None:
    class Hanging(MemoryStore):
        never_waits = False

        async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
            await asyncio.sleep(3600)
            return None

    lim = Limiter(
        LimitsFile.model_validate(tier(requests_per_minute=1)), LimitSettings(per_user=0),
        Hanging(), timeout_s=0.05,
    )  # fmt: skip
    assert (await admit(lim)).refusal is None


async def test_store_trouble_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lim = limiter(_Failing(StoreUnavailable("Redis did not answer")), tier(requests_per_minute=1))
    for _ in range(20):
        await admit(lim)
    warnings = [r for r in caplog.records if "state store failed" in r.getMessage()]
    assert len(warnings) == 1


class Kept:
    """A directory's budgets for the limiter, as ``Inheritance.limits`` answers: mutable, so
    a test changes them between requests; the calls are counted."""

    def __init__(
        self, tenant: Limits | None = None, team: Limits | None = None, user: Limits | None = None
    ) -> None:
        self.found = ScopeLimits(tenant, team, user)
        self.asked: list[tuple[str | None, str, str | None]] = []

    async def __call__(self, tenant: str | None, user_id: str, team: str | None) -> ScopeLimits:
        self.asked.append((tenant, user_id, team))
        return self.found


def directory_limiter(store: Store, file: Mapping[str, object], kept: Kept) -> Limiter:
    return Limiter(
        LimitsFile.model_validate(file), LimitSettings(per_user=0, per_tenant=0), store,
        timeout_s=2.0, clock=Clock(), directory=kept,
    )  # fmt: skip


async def test_a_teams_directory_budget_wins_over_the_files_entry_and_keeps_the_rest(
    store_case: StoreCase,
) -> None:
    file = {
        "tiers": {"premium": {}},
        "scopes": {"team": {"ml": {"requests_per_minute": 3, "tokens_per_month": 10_000}}},
    }
    kept = Kept(team=Limits(tokens_per_month=100))
    lim = directory_limiter(store_case.store, file, kept)
    assert (await admit(lim, tokens=60)).refusal is None
    refused = (await admit(lim, tokens=60)).refusal
    assert isinstance(refused, TokenBudgetExceeded)  # the directory's 100, not the file's
    assert (refused.details["scope"], refused.details["limit"]) == ("team", 100)
    assert kept.asked[-1] == ("acme", "alice", "ml")
    (team,) = [s for s in lim.scopes(ALICE, None, kept.found) if s.kind == "team"]
    assert (team.rate, team.tokens) == (3, 100)  # the file's rate stays


async def test_directory_budgets_apply_to_a_team_and_a_tenant_the_file_does_not_list(
    store_case: StoreCase,
) -> None:
    kept = Kept(tenant=Limits(cost_per_month_usd=1.0), team=Limits(requests_per_minute=1))
    lim = directory_limiter(store_case.store, {"tiers": {"premium": {}}}, kept)
    assert (await admit(lim, cost=0.6)).refusal is None
    by_team = (await admit(lim)).refusal
    assert by_team is not None
    assert (by_team.code, by_team.details["scope"]) == ("rate_limited", "team")
    kept.found = ScopeLimits(tenant=Limits(cost_per_month_usd=1.0))  # the team's rate cleared
    by_tenant = (await admit(lim, cost=0.6)).refusal
    assert isinstance(by_tenant, CostBudgetExceeded)
    assert by_tenant.details["scope"] == "tenant"
    scopes = await lim.peek(ALICE, None)
    assert {s["scope"] for s in scopes} == {"user", "tenant"}  # the team has no limit now


async def test_a_user_records_budget_wins_over_the_tiers_and_keeps_its_other_limits(
    store_case: StoreCase,
) -> None:
    file = tier(requests_per_minute=3, tokens_per_month=10_000, queue={"max_wait_ms": 50})
    kept = Kept(user=Limits(tokens_per_month=100))
    lim = directory_limiter(store_case.store, file, kept)
    assert (await admit(lim, tokens=60)).refusal is None
    refused = (await admit(lim, tokens=60)).refusal
    assert isinstance(refused, TokenBudgetExceeded)  # the record's 100, not the tier's 10,000
    assert (refused.details["scope"], refused.details["limit"]) == ("user", 100)
    (user,) = [s for s in lim.scopes(ALICE, None, kept.found) if s.kind == "user"]
    assert (user.rate, user.tokens, user.counted_as) == (3, 100, "acme/alice")
    assert user.limits.queue is not None  # the tier's queue stays the user's
    bob = Principal("bob", "user", tier="premium", tenant="acme", key_id="k2")
    (other,) = [s for s in lim.scopes(bob, None, NO_LIMITS) if s.kind == "user"]
    assert other.tokens == 10_000  # a user without a record keeps the tier's budget


async def test_a_user_records_rate_limits_a_caller_of_no_tenant_or_tier(
    store_case: StoreCase,
) -> None:
    """A user record may exist without a tenant, a team or a tier: the directory is asked
    for every caller, and the record's limits go over the default tier's."""
    file = {"tiers": {"free": {"tokens_per_month": 500}}, "default_tier": "free"}
    kept = Kept(user=Limits(requests_per_minute=2))
    lim = directory_limiter(store_case.store, file, kept)
    solo = Principal("solo", "user")
    results = [await admit(lim, solo, tokens=10) for _ in range(3)]
    assert [r.refusal is None for r in results] == [True, True, False]
    refused = results[2].refusal
    assert refused is not None
    assert (refused.code, refused.details["scope"]) == ("rate_limited", "user")
    assert kept.asked[0] == (None, "solo", None)
    (user,) = lim.scopes(solo, None, kept.found)
    assert (user.rate, user.tokens) == (2, 500)  # the default tier's budget stays
    kept.found = NO_LIMITS  # the record's rate cleared: the default tier's limits alone
    assert (await admit(lim, solo, tokens=10)).refusal is None


async def test_peek_counts_nothing(store_case: StoreCase) -> None:
    lim = limiter(store_case.store, tier(requests_per_minute=5, tokens_per_month=1000))
    await admit(lim, tokens=100)
    for _ in range(3):
        (user,) = await lim.peek(ALICE, None)
    assert user["requests_per_minute"] == {
        "limit": 5, "used": 1, "remaining": 4, "reset_seconds": 60,
    }  # fmt: skip
    tokens = user["tokens_per_month"]
    assert isinstance(tokens, dict)
    assert (tokens["used"], tokens["remaining"]) == (100, 900)


async def test_every_key_the_limiter_writes_expires(store_case: StoreCase) -> None:
    file = tier(requests_per_minute=5, tokens_per_month=100, cost_per_month_usd=1,
                queue={"max_wait_ms": 100})  # fmt: skip
    lim = limiter(store_case.store, file)
    await admit(lim, tokens=10, cost=0.01)
    for key in await store_case.keys():
        ttl = await store_case.store.ttl(key)
        assert ttl is not None
        assert ttl != float("inf"), key


async def test_a_queued_request_that_goes_away_gives_up_its_place(store_case: StoreCase) -> None:
    file = tier(requests_per_minute=1, queue={"max_wait_ms": 30_000})
    lim = limiter(store_case.store, file)
    assert (await admit(lim, request_id="first")).refusal is None
    waiting = asyncio.create_task(admit(lim, request_id="waiting"))
    queue = "q:user:acme/alice"  # a tenant's user is counted within the tenant
    while not await store_case.store.run(_CARD, [queue], []):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await store_case.store.run(_CARD, [queue], []) == 0


def _card(ops: Ops, keys: Sequence[str], args: Sequence[bytes]) -> Reply:
    return ops.zcard(keys[0])


_CARD = Script("zcard", "return redis.call('ZCARD', KEYS[1])", _card)
