"""The directory service (:mod:`llm_gateway.auth.directory`): teams and users confined to
their tenant (another tenant's are not found and not listed), a tenant's own record."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llm_gateway.auth.directory import (
    AlreadyExists,
    Directory,
    Lineage,
    TeamNotFound,
    UserNotFound,
)
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database


@pytest.fixture
async def directory(database_url: str) -> AsyncIterator[Directory]:
    db = Database(async_driver_url(database_url))
    await db.upgrade()
    yield Directory(db.sessions)
    await db.dispose()


async def test_teams_are_made_changed_and_removed_within_their_tenant(
    directory: Directory,
) -> None:
    red = await directory.create_team("acme", "red", "premium")
    assert (red.tenant, red.name, red.tier) == ("acme", "red", "premium")
    await directory.create_team("globex", "red", "free")  # the same name, another tenant
    await directory.create_team(None, "blue", None)
    with pytest.raises(AlreadyExists):
        await directory.create_team("acme", "red", "free")

    assert [(t.name, t.tier) for t in await directory.teams("acme")] == [("red", "premium")]
    assert [t.name for t in await directory.teams(None)] == ["blue"]
    assert (await directory.update_team("acme", "red", tier="enterprise")).tier == "enterprise"
    assert (await directory.team("globex", "red")).tier == "free"  # untouched

    for scope, name in (("globex", "blue"), (None, "red"), ("initech", "red")):
        with pytest.raises(TeamNotFound):
            await directory.team(scope, name)
    with pytest.raises(TeamNotFound):
        await directory.update_team("initech", "red", tier="free")
    with pytest.raises(TeamNotFound):
        await directory.delete_team("initech", "red")

    assert (await directory.delete_team("acme", "red")).tier == "enterprise"
    assert await directory.teams("acme") == []
    assert [t.name for t in await directory.teams("globex")] == ["red"]


async def test_users_are_confined_to_their_tenant_and_its_teams(directory: Directory) -> None:
    await directory.create_team("acme", "red", "premium")
    await directory.create_team("globex", "green", "free")
    ada = await directory.create_user("acme", "ada", team="red", role="user")
    assert (ada.tenant, ada.team, ada.role, ada.tier) == ("acme", "red", "user", None)
    with pytest.raises(AlreadyExists):
        await directory.create_user("acme", "ada")
    with pytest.raises(TeamNotFound):  # another tenant's team is not found
        await directory.create_user("acme", "bob", team="green")
    with pytest.raises(TeamNotFound):
        await directory.update_user("acme", "ada", team="green")

    assert [u.user_id for u in await directory.users("acme")] == ["ada"]
    assert await directory.users("globex") == []
    for action in (
        directory.user("globex", "ada"),
        directory.update_user("globex", "ada", tier="enterprise"),
        directory.delete_user("globex", "ada"),
    ):
        with pytest.raises(UserNotFound):
            await action

    changed = await directory.update_user("acme", "ada", tier="free", team=None)
    assert (changed.tier, changed.team, changed.role) == ("free", None, "user")
    await directory.delete_user("acme", "ada")
    with pytest.raises(UserNotFound):
        await directory.user("acme", "ada")


async def test_a_tenant_reads_and_updates_only_its_own_record(directory: Directory) -> None:
    assert (await directory.tenant("acme")).tier is None
    updated = await directory.update_tenant("acme", display_name="ACME", tier="premium")
    assert (updated.name, updated.display_name, updated.tier) == ("acme", "ACME", "premium")
    assert (await directory.update_tenant("acme", tier=None)).display_name == "ACME"
    assert (await directory.tenant("acme")).tier is None
    assert (await directory.tenant("globex")).display_name is None


async def test_teams_and_tenants_keep_budgets_and_every_change_is_announced(
    directory: Directory,
) -> None:
    changes: list[str] = []
    directory.on_change.append(lambda: changes.append("changed"))
    red = await directory.create_team("acme", "red", None, tokens_per_month=5_000_000_000)
    assert (red.tokens_per_month, red.requests_per_minute, red.cost_per_month_usd) == (
        5_000_000_000, None, None,
    )  # fmt: skip
    changed = await directory.update_team("acme", "red", cost_per_month_usd=12.5)
    assert (changed.tokens_per_month, changed.cost_per_month_usd) == (5_000_000_000, 12.5)
    cleared = await directory.update_team("acme", "red", tokens_per_month=None)
    assert (cleared.tokens_per_month, cleared.cost_per_month_usd) == (None, 12.5)
    tenant = await directory.update_tenant("acme", requests_per_minute=30)
    assert (tenant.requests_per_minute, tenant.tier) == (30, None)
    assert (await directory.tenant("acme")).requests_per_minute == 30
    await directory.create_user("acme", "ada", team="red")
    await directory.update_user("acme", "ada", tier="free")
    await directory.delete_user("acme", "ada")
    await directory.delete_team("acme", "red")
    assert len(changes) == 8
    with pytest.raises(TeamNotFound):  # a change that fails announces nothing
        await directory.update_team("acme", "red", tier="free")
    assert len(changes) == 8
    with pytest.raises(TypeError):
        await directory.update_tenant("acme", budget=1)  # not a budget: a bug, never stored


async def test_users_keep_budgets_set_changed_and_cleared(directory: Directory) -> None:
    changes: list[str] = []
    directory.on_change.append(lambda: changes.append("changed"))
    await directory.create_team("acme", "red", None)
    ada = await directory.create_user(
        "acme", "ada", team="red", tokens_per_month=5_000_000_000, requests_per_minute=20
    )
    assert (ada.tokens_per_month, ada.requests_per_minute, ada.cost_per_month_usd) == (
        5_000_000_000, 20, None,
    )  # fmt: skip
    changed = await directory.update_user("acme", "ada", cost_per_month_usd=2.5, tier="free")
    assert (changed.tokens_per_month, changed.cost_per_month_usd, changed.tier) == (
        5_000_000_000, 2.5, "free",
    )  # fmt: skip
    cleared = await directory.update_user("acme", "ada", tokens_per_month=None)
    assert (cleared.tokens_per_month, cleared.requests_per_minute) == (None, 20)
    assert (cleared.team, cleared.cost_per_month_usd) == ("red", 2.5)  # the rest untouched
    (listed,) = await directory.users("acme")
    assert (listed.requests_per_minute, listed.cost_per_month_usd) == (20, 2.5)
    shown = await directory.user("acme", "ada")
    assert shown == cleared
    plain = await directory.create_user(None, "ada")  # another tenant's ada: none set
    assert (plain.requests_per_minute, plain.tokens_per_month, plain.cost_per_month_usd) == (
        None, None, None,
    )  # fmt: skip
    assert len(changes) == 5
    with pytest.raises(TypeError):
        await directory.update_user("acme", "ada", budget=1)  # not a budget: a bug
    with pytest.raises(UserNotFound):  # another tenant's user is not found, nothing changes
        await directory.update_user("globex", "ada", tokens_per_month=1)
    assert (await directory.user("acme", "ada")).tokens_per_month is None


async def test_one_callers_budgets_are_read_together(directory: Directory) -> None:
    await directory.create_team("acme", "red", None, requests_per_minute=7)
    await directory.update_tenant("acme", tokens_per_month=9)
    await directory.create_user("acme", "ada", team="red", cost_per_month_usd=1.5)
    rows = await directory.lineage("acme", "ada", "red")
    user, team, tenant = rows.user, rows.team, rows.tenant
    assert user is not None
    assert team is not None
    assert tenant is not None
    assert (user.cost_per_month_usd, team.requests_per_minute, tenant.tokens_per_month) == (
        1.5, 7, 9,
    )  # fmt: skip
    own = await directory.lineage("acme", "ada", None)  # no team named: the record's
    assert (own.team is not None and own.team.name, own.user is not None) == ("red", True)
    assert (await directory.lineage("globex", "ada", "red")) == Lineage(None, None, None)
