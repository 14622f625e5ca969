"""What callers inherit from the directory, end to end through the official OpenAI SDK: a
key made through the admin API with no tier gets its team's (the model only that tier may
use answers, and the free tier's rate does not refuse it), a user record's tier wins over
the team's, a key's own tier is kept, and a team's budget set through the admin API is
that team's limit (``token_budget_exceeded`` once spent, gone once cleared), as a user
record's is that user's alone.

The gateway's tiers: ``free`` (2 requests a minute, ``ollama-emu`` only, the default tier)
and ``premium`` (``gpt-emu`` too). Admin changes are seen at once: they go through the
process's own directory, which clears its cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, directive, start_gateway, stop_gateway
from tests.e2e.test_admin_keys import Admin, _error

TIERS = """
tiers:
  free:
    requests_per_minute: 2
    models: [ollama-emu]
  premium:
    requests_per_minute: 1000
    models: [gpt-emu, claude-emu, ollama-emu]
  enterprise:
    requests_per_minute: 1000
    models: ["*"]
default_tier: free
"""
PING: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def tiered(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("tiered")
    (tmp / "config").mkdir()
    (tmp / "config" / "rate_limits.yaml").write_text(TIERS)
    gw = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db")
    try:
        yield gw
    finally:
        stop_gateway(gw)


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _admin(gw: Gateway, tenant: str | None = None) -> Admin:
    return Admin(gw, tenant or _tenant())


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _key(admin: Admin, user: str, **fields: Any) -> str:
    made = admin.create(user_id=user, **{"tier": None, "team": None, **fields})
    key: str = made["key"]
    return key


def _denied(gw: Gateway, key: str, model: str = "gpt-emu") -> None:
    with pytest.raises(openai.PermissionDeniedError):
        gw.openai(key).chat.completions.create(model=model, messages=PING)


def test_a_key_without_a_tier_gets_its_teams_tier(tiered: Gateway) -> None:
    admin = _admin(tiered)
    team = _ok(admin.call("POST", "/api/v1/admin/teams", {"name": "red", "tier": "premium"}))
    assert team["tier"] == "premium"
    key = _key(admin, "svc-a", team="red")
    client = tiered.openai(key)
    for _ in range(4):  # premium's model, and more than free's 2 a minute
        answer = client.chat.completions.create(model="gpt-emu", messages=PING)
        assert answer.choices[0].message.content
    _denied(tiered, _key(admin, "svc-b"))  # no team, no tier: none to inherit

    _ok(admin.call("PATCH", "/api/v1/admin/teams/red", {"tier": "free"}))
    _denied(tiered, key)  # the change is seen at once


def test_a_user_records_tier_wins_over_the_teams_and_a_keys_own_tier_is_kept(
    tiered: Gateway,
) -> None:
    tenant = _tenant()
    admin = _admin(tiered, tenant)
    _ok(admin.call("POST", "/api/v1/admin/teams", {"name": "red", "tier": "premium"}))
    record = {"user_id": "ada", "team": "red", "tier": "free"}
    _ok(admin.call("POST", "/api/v1/admin/users", record))
    _denied(tiered, _key(admin, "ada"))  # the record's free tier, its team is premium
    own = _key(admin, "bob", team="red", tier="free")
    _denied(tiered, own)  # the key names free: kept over the team's
    client = tiered.openai(own)
    for _ in range(2):
        client.chat.completions.create(model="ollama-emu", messages=PING)
    with pytest.raises(openai.RateLimitError):  # free's rate, not premium's
        client.chat.completions.create(model="ollama-emu", messages=PING)

    _ok(admin.call("PATCH", "/api/v1/admin/users/ada", {"tier": None}))
    answer = tiered.openai(_key(admin, "ada")).chat.completions.create(
        model="gpt-emu", messages=PING
    )  # now the team's tier, through the record's team
    assert answer.choices[0].message.content
    token = tiered.token("ada", tenant=tenant, tier=None)  # our JWT, with no tier claim
    by_token = tiered.openai(token).chat.completions.create(model="gpt-emu", messages=PING)
    assert by_token.choices[0].message.content


def test_a_teams_budget_set_through_the_admin_api_is_enforced(tiered: Gateway) -> None:
    admin = _admin(tiered)
    made = _ok(
        admin.call(
            "POST", "/api/v1/admin/teams",
            {"name": "red", "tier": "premium", "tokens_per_month": 300},
        )
    )  # fmt: skip
    assert (made["tokens_per_month"], made["cost_per_month_usd"]) == (300, None)
    client = tiered.openai(_key(admin, "svc", team="red"))
    spend = directive("spend", usage={"input": 100, "output": 150})
    client.chat.completions.create(
        model="gpt-emu", max_tokens=20, messages=[{"role": "user", "content": spend}]
    )  # 250 of the team's 300 used
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gpt-emu", max_tokens=100, messages=[{"role": "user", "content": "more"}]
        )
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["code"] == "token_budget_exceeded"
    assert "team" in body["message"]

    cleared = _ok(admin.call("PATCH", "/api/v1/admin/teams/red", {"tokens_per_month": None}))
    assert cleared["tokens_per_month"] is None
    client.chat.completions.create(
        model="gpt-emu", max_tokens=100, messages=[{"role": "user", "content": "more"}]
    )


def test_a_tenants_budget_and_bad_budgets(tiered: Gateway) -> None:
    admin = _admin(tiered)
    record = _ok(admin.call("PATCH", "/api/v1/admin/tenant", {"requests_per_minute": 1}))
    assert record["requests_per_minute"] == 1
    client = tiered.openai(_key(admin, "svc", tier="premium"))
    client.chat.completions.create(model="gpt-emu", messages=PING)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-emu", messages=PING)
    body = refused.value.body
    assert isinstance(body, dict)
    assert "tenant" in body["message"]

    _each_invalid(admin, [
        ("POST", "/api/v1/admin/teams", b'{"name": "x", "tokens_per_month": -1}',
         "tokens_per_month"),
        ("POST", "/api/v1/admin/teams", b'{"name": "x", "tokens_per_month": 1.5}',
         "tokens_per_month"),
        ("PATCH", "/api/v1/admin/tenant", b'{"cost_per_month_usd": "ten"}',
         "cost_per_month_usd"),
        ("PATCH", "/api/v1/admin/tenant", b'{"requests_per_minute": true}',
         "requests_per_minute"),
    ])  # fmt: skip


def _each_invalid(admin: Admin, calls: list[tuple[str, str, bytes, str]]) -> None:
    """Each call (method, path, body, the field it gets wrong) is a 400 naming the field."""
    for method, path, raw, param in calls:
        error = _error(admin.call(method, path, raw=raw), 400)
        assert (error["code"], error["param"]) == ("invalid_field", param)


def test_a_users_budget_set_through_the_admin_api_is_theirs_alone(tiered: Gateway) -> None:
    admin = _admin(tiered)
    _ok(admin.call("POST", "/api/v1/admin/teams", {"name": "red", "tier": "premium"}))
    record = {"user_id": "ada", "team": "red", "tokens_per_month": 300}
    made = _ok(admin.call("POST", "/api/v1/admin/users", record))
    assert (made["tokens_per_month"], made["requests_per_minute"]) == (300, None)
    shown = _ok(admin.call("GET", "/api/v1/admin/users/ada"))
    assert shown["tokens_per_month"] == 300
    listed = _ok(admin.call("GET", "/api/v1/admin/users"))["data"]
    assert [(u["user_id"], u["tokens_per_month"]) for u in listed] == [("ada", 300)]
    ada = tiered.openai(_key(admin, "ada"))  # the record's team's tier: premium
    bob = tiered.openai(_key(admin, "bob", team="red"))  # the same team, no record
    spend = directive("spend", usage={"input": 100, "output": 150})
    for client in (ada, bob):
        client.chat.completions.create(
            model="gpt-emu", max_tokens=20, messages=[{"role": "user", "content": spend}]
        )  # 250 of ada's 300 used; bob has no budget
    more: list[ChatCompletionMessageParam] = [{"role": "user", "content": "more"}]
    with pytest.raises(openai.RateLimitError) as refused:
        ada.chat.completions.create(model="gpt-emu", max_tokens=100, messages=more)
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["code"] == "token_budget_exceeded"
    assert "user" in body["message"]
    bob.chat.completions.create(model="gpt-emu", max_tokens=100, messages=more)  # not bob's

    cleared = _ok(admin.call("PATCH", "/api/v1/admin/users/ada", {"tokens_per_month": None}))
    assert (cleared["tokens_per_month"], cleared["team"]) == (None, "red")
    ada.chat.completions.create(model="gpt-emu", max_tokens=100, messages=more)


def test_bad_user_budgets_are_400s_naming_the_field(tiered: Gateway) -> None:
    admin = _admin(tiered)
    _ok(admin.call("POST", "/api/v1/admin/users", {"user_id": "ada"}))
    _each_invalid(admin, [
        ("POST", "/api/v1/admin/users", b'{"user_id": "x", "tokens_per_month": -1}',
         "tokens_per_month"),
        ("POST", "/api/v1/admin/users", b'{"user_id": "x", "requests_per_minute": "9"}',
         "requests_per_minute"),
        ("PATCH", "/api/v1/admin/users/ada", b'{"cost_per_month_usd": -0.5}',
         "cost_per_month_usd"),
        ("PATCH", "/api/v1/admin/users/ada", b'{"tokens_per_month": "lots"}',
         "tokens_per_month"),
    ])  # fmt: skip
    unchanged = _ok(admin.call("GET", "/api/v1/admin/users/ada"))
    assert (unchanged["tokens_per_month"], unchanged["cost_per_month_usd"]) == (None, None)
    assert [u["user_id"] for u in _ok(admin.call("GET", "/api/v1/admin/users"))["data"]] == ["ada"]
