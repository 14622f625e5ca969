"""What a caller inherits from the directory (:mod:`llm_gateway.auth.inheritance`), on
SQLite and PostgreSQL: the order (the credential's own, then the user record, the team,
the tenant), the role only without a role claim, the cache (kept for its TTL, negative
answers too, bounded, cleared by a change through the same directory, another process's
change seen after the TTL) and a database that does not answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from llm_gateway.auth.claims import principal_of
from llm_gateway.auth.directory import Directory
from llm_gateway.auth.inheritance import NO_LIMITS, Inheritance, TtlCache
from llm_gateway.auth.principal import Principal
from llm_gateway.config.limits import Limits
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    directory: Directory  # this process's: its changes clear the cache
    other: Directory  # another process's, on the same database
    inheritance: Inheritance
    clock: Clock


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    db = Database(async_driver_url(database_url))
    await db.upgrade()
    directory, clock = Directory(db.sessions), Clock()
    yield Setup(directory, Directory(db.sessions), Inheritance(directory, 30, clock=clock), clock)
    await db.dispose()


KEY = Principal("ada", "user", tenant="acme", auth_method="api_key", key_id="k1")


async def test_the_tier_comes_from_the_user_then_the_team_then_the_tenant(setup: Setup) -> None:
    d, resolve = setup.directory, setup.inheritance.resolve
    assert await resolve(KEY) is KEY  # nothing kept: the credential as it is
    await d.update_tenant("acme", tier="free")
    assert (await resolve(KEY)).tier == "free"
    await d.create_team("acme", "red", "premium")
    assert (await resolve(replace(KEY, team="red"))).tier == "premium"  # the key's team
    await d.create_user("acme", "ada", team="red")
    via_record = await resolve(KEY)
    assert (via_record.tier, via_record.team) == ("premium", "red")  # the record's team
    await d.update_user("acme", "ada", tier="enterprise")
    assert (await resolve(KEY)).tier == "enterprise"  # the user record wins over the team
    assert (await resolve(replace(KEY, tier="free"))).tier == "free"  # the key's own wins


async def test_the_credentials_team_counts_over_the_records(setup: Setup) -> None:
    d = setup.directory
    await d.create_team("acme", "red", "premium")
    await d.create_team("acme", "blue", "enterprise")
    await d.create_user("acme", "ada", team="red")
    found = await setup.inheritance.resolve(replace(KEY, team="blue"))
    assert (found.team, found.tier) == ("blue", "enterprise")


async def test_another_tenants_records_are_not_inherited(setup: Setup) -> None:
    await setup.directory.create_team("globex", "red", "enterprise")
    await setup.directory.create_user("globex", "ada", tier="enterprise", team="red")
    await setup.directory.update_tenant("globex", tier="enterprise")
    found = await setup.inheritance.resolve(replace(KEY, team="red"))
    assert found.tier is None


async def test_the_record_gives_a_role_only_to_a_token_without_a_role_claim(
    setup: Setup,
) -> None:
    await setup.directory.create_user("acme", "ada", role="auditor")
    resolve = setup.inheritance.resolve
    unclaimed = principal_of({"sub": "ada", "tenant": "acme"})
    assert (unclaimed.role, unclaimed.role_claimed) == ("user", False)
    assert (await resolve(unclaimed)).role == "auditor"
    claimed = principal_of({"sub": "ada", "tenant": "acme", "role": "user"})
    assert (await resolve(claimed)).role == "user"
    assert (await resolve(KEY)).role == "user"  # an API key always names its role


async def test_a_directory_role_never_replaces_a_claimed_one(setup: Setup) -> None:
    await setup.directory.create_user("acme", "ada", role="admin")
    for claims in ({"role": "user"}, {"role": "no-such-role"}):
        token = principal_of({"sub": "ada", "tenant": "acme", **claims})
        assert (await setup.inheritance.resolve(token)).role == claims["role"]
    assert (await setup.inheritance.resolve(KEY)).role == "user"


async def test_answers_are_kept_for_the_ttl_and_another_processes_change_waits_for_it(
    setup: Setup,
) -> None:
    resolve = setup.inheritance.resolve
    assert (await resolve(KEY)).tier is None  # "nothing kept" is kept too
    await setup.other.create_user("acme", "ada", tier="premium")
    assert (await resolve(KEY)).tier is None
    setup.clock.now += 29
    assert (await resolve(KEY)).tier is None
    setup.clock.now += 1
    assert (await resolve(KEY)).tier == "premium"
    await setup.other.update_user("acme", "ada", tier="free")
    assert (await resolve(KEY)).tier == "premium"  # the positive answer is kept as well


async def test_a_change_through_this_directory_is_seen_at_once(setup: Setup) -> None:
    resolve, limits = setup.inheritance.resolve, setup.inheritance.limits
    assert (await resolve(KEY)).tier is None
    assert (await limits("acme", "ada", "red")).team is None
    await setup.directory.create_team("acme", "red", "premium", tokens_per_month=50)
    await setup.directory.create_user("acme", "ada", team="red")
    assert (await resolve(KEY)).tier == "premium"
    assert (await limits("acme", "ada", "red")).team == Limits(tokens_per_month=50)
    await setup.directory.update_team("acme", "red", tier="free", tokens_per_month=None)
    assert (await resolve(KEY)).tier == "free"
    assert (await limits("acme", "ada", "red")).team is None
    await setup.directory.update_tenant("acme", cost_per_month_usd=2.5)
    assert (await limits("acme", "ada", "red")).tenant == Limits(cost_per_month_usd=2.5)
    await setup.directory.delete_user("acme", "ada")
    assert (await resolve(KEY)).tier is None


async def test_the_budgets_of_the_team_and_the_tenant(setup: Setup) -> None:
    await setup.directory.create_team(
        "acme", "red", None, requests_per_minute=7, cost_per_month_usd=1.5
    )
    found = await setup.inheritance.limits("acme", "ada", "red")
    assert found.team == Limits(requests_per_minute=7, cost_per_month_usd=1.5)
    assert found.tenant is None
    assert (await setup.inheritance.limits("globex", "ada", "red")).team is None


async def test_a_user_records_budgets_in_the_same_lookup_as_the_team_and_tenant(
    setup: Setup,
) -> None:
    d, limits = setup.directory, setup.inheritance.limits
    await d.create_team("acme", "red", None, requests_per_minute=7)
    await d.update_tenant("acme", cost_per_month_usd=1.5)
    await d.create_user("acme", "ada", team="red", tokens_per_month=5_000_000_000)
    found = await limits("acme", "ada", "red")
    assert found.user == Limits(tokens_per_month=5_000_000_000)
    assert (found.team, found.tenant) == (
        Limits(requests_per_minute=7), Limits(cost_per_month_usd=1.5),
    )  # fmt: skip
    assert (await limits("acme", "bob", "red")).user is None  # another user of the team
    assert (await limits("globex", "ada", None)).user is None  # another tenant's ada
    await d.update_user("acme", "ada", tokens_per_month=None, requests_per_minute=3)
    assert (await limits("acme", "ada", "red")).user == Limits(requests_per_minute=3)
    await d.update_user("acme", "ada", requests_per_minute=None)
    assert (await limits("acme", "ada", "red")).user is None


class CountedSessions:
    """A directory's sessions, counted: how many database reads the lookups made."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.sessions()

    def begin(self) -> Any:
        return self.sessions.begin()


async def test_a_caller_the_directory_keeps_nothing_on_costs_one_read_then_none(
    setup: Setup,
) -> None:
    counted = CountedSessions(setup.directory.sessions)
    setup.directory.sessions = counted  # type: ignore[assignment]  # the reads' interface
    for who in (("acme", "nobody", "red"), (None, "solo", None)):
        first = await setup.inheritance.limits(*who)
        assert first is NO_LIMITS  # the one shared answer, which the limiter tells at once
        assert counted.opened == 1  # user record, team, tenant: one session
        for _ in range(5):
            assert await setup.inheritance.limits(*who) is NO_LIMITS
        assert counted.opened == 1
        counted.opened = 0
    await setup.other.create_user(None, "solo", tokens_per_month=9)  # another process's
    assert await setup.inheritance.limits(None, "solo", None) is NO_LIMITS  # within the TTL
    setup.clock.now += 30
    assert (await setup.inheritance.limits(None, "solo", None)).user == Limits(tokens_per_month=9)


async def test_a_database_that_does_not_answer_leaves_the_credential_as_it_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A SQLite file in a directory that does not exist: every read fails.
    db = Database("sqlite+aiosqlite:////nonexistent-dir/for/sure/gateway.db")
    inheritance = Inheritance(Directory(db.sessions), 30)
    try:
        with caplog.at_level(logging.WARNING, "llm_gateway.auth.inheritance"):
            first = await inheritance.resolve(KEY)
            bob = replace(KEY, user_id="bob", team="red")
            assert await inheritance.resolve(bob) == bob
            budgets = await inheritance.limits("acme", "ada", "red")
    finally:
        await db.dispose()
    assert first == KEY
    assert budgets is NO_LIMITS
    warnings = [r for r in caplog.records if "directory: the database failed" in r.message]
    assert len(warnings) == 1  # logged once, not per request
    assert "nonexistent" not in warnings[0].getMessage()  # the driver's message stays out


def test_the_cache_is_bounded_and_drops_its_oldest_entry() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(60, limit=2, clock=clock)
    cache.put("a", 1, cache.generation)
    cache.put("b", 2, cache.generation)
    cache.put("c", 3, cache.generation)
    assert len(cache) == 2
    assert cache.get("a") == (False, None)
    assert cache.get("c") == (True, 3)


def test_an_answer_read_before_a_clearing_is_not_kept_after_it() -> None:
    cache: TtlCache[str, int] = TtlCache(60)
    generation = cache.generation  # a lookup starts
    cache.clear()  # an admin change lands meanwhile
    cache.put("a", 1, generation)
    assert cache.get("a") == (False, None)


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(0)
    cache.put("a", 1, cache.generation)
    assert cache.get("a") == (False, None)


async def test_callers_that_miss_together_share_one_read() -> None:
    """An entry expiring under load is missed by every request in flight at once."""
    cache: TtlCache[str, int] = TtlCache(60)
    reads = 0
    release = asyncio.Event()

    async def read() -> int:
        nonlocal reads
        reads += 1
        await release.wait()
        return 7

    waiting = [asyncio.create_task(cache.load("a", read)) for _ in range(16)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [7] * 16
    assert reads == 1
    assert await cache.load("a", read) == 7  # kept: no second read
    assert reads == 1


async def test_a_failed_shared_read_fails_every_caller_and_keeps_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(60)
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise OSError("the database went away")

    waiting = [asyncio.create_task(cache.load("a", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert cache.get("a") == (False, None)

    async def working() -> int:
        return 1

    assert await cache.load("a", working) == 1  # the next caller reads afresh
