"""The admin API's keys (``/api/v1/admin/keys``) end to end: a key made by API is used
through the official OpenAI SDK, rotated with an overlap (both work, then only the new
one), revoked (refused, ``api_key_revoked``); only administrators may, only within their
tenant (another tenant's key is a 404, as an unknown one), bad bodies are 400s naming the
field, and every call is audited under its action's name, never with a key in its row.

The gateway caches verified keys for ``API_KEY_CACHE_SECONDS``, 0 here: a revocation
takes effect at once.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llm_gateway.api.admin import KeyList, KeyObject, NewKey, Rotated
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway

PING: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
KEY = {"user_id": "svc-batch", "role": "user", "tier": "premium", "team": "red"}


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class Admin:
    """An administrator (or anyone: ``role``) of one tenant, calling the admin API."""

    def __init__(self, gw: Gateway, tenant: str | None, role: str = "admin") -> None:
        self.gw = gw
        claims: dict[str, Any] = {"role": role, "tier": "enterprise"}
        if tenant is not None:
            claims["tenant"] = tenant
        self.headers = {"authorization": f"Bearer {gw.token(f'{role}-{tenant}', **claims)}"}

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> httpx.Response:
        with self.gw.http() as http:
            if raw is not None:
                headers = {**self.headers, "content-type": "application/json"}
                return http.request(method, path, content=raw, headers=headers)
            return http.request(method, path, json=body, headers=self.headers)

    def create(self, **fields: Any) -> dict[str, Any]:
        done = self.call("POST", "/api/v1/admin/keys", {**KEY, **fields})
        assert done.status_code == 200, done.text
        body: dict[str, Any] = done.json()
        NewKey.model_validate(body)  # the documented model is what is sent
        return body


def _chat(gw: Gateway, key: str) -> str:
    answer = gw.openai(key).chat.completions.create(model="gpt-emu", messages=PING)
    assert answer.choices[0].message.content
    return answer.id


def _refused(gw: Gateway, key: str) -> str:
    with pytest.raises(openai.AuthenticationError) as refused:
        gw.openai(key).chat.completions.create(model="gpt-emu", messages=PING)
    body = refused.value.body
    assert isinstance(body, dict)
    code: str = body["code"]
    return code


def _audited(gw: Gateway, response: httpx.Response, action: str) -> AuditLog:
    row = gw.audit_row(response.headers["x-request-id"])
    assert row.endpoint == action
    assert row.status == response.status_code
    return row


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# --- the key lifecycle through the OpenAI SDK -------------------------------------------


def test_a_key_created_by_api_calls_models_until_revoked(gateway: Gateway) -> None:
    tenant = _tenant()
    admin = Admin(gateway, tenant)
    created = admin.create(description="nightly", environment="staging")
    key, key_id = created["key"], created["id"]
    assert key.startswith(f"lsg_{key_id}_")
    assert created["tenant"] == tenant  # the caller's, always
    assert created["state"] == "active"
    assert (created["user_id"], created["tier"], created["team"]) == ("svc-batch", "premium", "red")

    chat_id = _chat(gateway, key)
    rows = gateway.audit_rows(AuditLog.tenant == tenant, AuditLog.endpoint == "openai")
    assert [(r.user_id, r.status) for r in rows] == [("svc-batch", 200)]
    assert chat_id

    shown = admin.call("GET", f"/api/v1/admin/keys/{key_id}")
    assert shown.status_code == 200
    assert shown.json()["id"] == key_id
    assert "key" not in shown.json()
    KeyObject.model_validate(shown.json())
    listed = admin.call("GET", "/api/v1/admin/keys")
    assert [k["id"] for k in listed.json()["data"]] == [key_id]
    KeyList.model_validate(listed.json())
    for response in (shown, listed):
        assert key not in response.text
        assert key.split("_", 2)[2] not in response.text

    revoked = admin.call("DELETE", f"/api/v1/admin/keys/{key_id}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert _refused(gateway, key) == "api_key_revoked"

    for response, action in (
        (shown, "admin.keys.read"), (listed, "admin.keys.list"), (revoked, "admin.keys.revoke"),
    ):  # fmt: skip
        row = _audited(gateway, response, action)
        assert row.tenant == tenant
        assert row.error_code is None
    created_rows = gateway.audit_rows(
        AuditLog.tenant == tenant, AuditLog.endpoint == "admin.keys.create"
    )
    assert len(created_rows) == 1
    for row in gateway.audit_rows(AuditLog.tenant == tenant):  # no row holds the key
        values = [getattr(row, a.key) for a in row.__mapper__.column_attrs]
        assert key.split("_", 2)[2] not in repr(values)


def test_a_rotated_key_works_through_its_overlap_and_then_not(gateway: Gateway) -> None:
    admin = Admin(gateway, _tenant())
    old = admin.create(tier="premium", environment="prod")

    rotated = admin.call(
        "POST", f"/api/v1/admin/keys/{old['id']}/rotate", {"overlap_seconds": 3600}
    )
    assert rotated.status_code == 200, rotated.text
    Rotated.model_validate(rotated.json())
    new, old_now = rotated.json()["new"], rotated.json()["old"]
    assert new["id"] != old["id"]
    assert new["key"] != old["key"]
    for attribute in ("user_id", "role", "tier", "team", "tenant", "environment"):
        assert new[attribute] == old[attribute], attribute
    assert old_now["state"] == "rotating"
    assert old_now["replaced_by"] == new["id"]
    assert "key" not in old_now
    _audited(gateway, rotated, "admin.keys.rotate")
    # in the overlap, both keys work
    _chat(gateway, old["key"])
    _chat(gateway, new["key"])
    # a key already rotated is not rotated again
    again = admin.call("POST", f"/api/v1/admin/keys/{old['id']}/rotate", {"overlap_seconds": 0})
    assert _error(again, 409)["code"] == "api_key_not_active"

    # a short overlap: once it is over, the old key is refused, the new one is not
    short = admin.create()
    done = admin.call("POST", f"/api/v1/admin/keys/{short['id']}/rotate", {"overlap_seconds": 1})
    assert done.status_code == 200, done.text
    successor = done.json()["new"]["key"]
    until = datetime.fromisoformat(done.json()["old"]["expires_at"])
    while datetime.now(UTC) <= until:
        time.sleep(0.1)
    assert _refused(gateway, short["key"]) == "api_key_rotated"
    _chat(gateway, successor)
    shown = admin.call("GET", f"/api/v1/admin/keys/{short['id']}")
    assert shown.json()["state"] == "rotated"


def test_a_key_calls_only_its_allowed_models(gateway: Gateway) -> None:
    admin = Admin(gateway, _tenant())
    created = admin.create(tier="premium", allowed_models=["gpt-emu"])
    assert created["allowed_models"] == ["gpt-emu"]
    key = created["key"]
    _chat(gateway, key)
    client = gateway.openai(key)
    with pytest.raises(openai.PermissionDeniedError) as refused:  # premium allows it; the key not
        client.chat.completions.create(model="claude-emu", messages=PING)
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["code"] == "policy_denied"
    assert "model not allowed for this API key: claude-emu" in str(body)
    assert [m.id for m in client.models.list()] == ["gpt-emu"]
    # a key without a list of its own calls what its tier allows
    unlimited = gateway.openai(admin.create(tier="premium")["key"])
    assert {"gpt-emu", "claude-emu"} <= {m.id for m in unlimited.models.list()}
    # its successor keeps the list
    rotated = admin.call(
        "POST", f"/api/v1/admin/keys/{created['id']}/rotate", {"overlap_seconds": 0}
    )
    successor = rotated.json()["new"]
    assert successor["allowed_models"] == ["gpt-emu"]
    with pytest.raises(openai.PermissionDeniedError):
        gateway.openai(successor["key"]).chat.completions.create(model="claude-emu", messages=PING)
    _chat(gateway, successor["key"])


# --- who may, and where -------------------------------------------------------------------


def test_only_administrators_manage_keys(gateway: Gateway) -> None:
    tenant = _tenant()
    key_id = Admin(gateway, tenant).create()["id"]
    for role in ("user", "auditor", "service"):
        caller = Admin(gateway, tenant, role=role)
        for method, path, body in (
            ("POST", "/api/v1/admin/keys", KEY),
            ("GET", "/api/v1/admin/keys", None),
            ("GET", f"/api/v1/admin/keys/{key_id}", None),
            ("DELETE", f"/api/v1/admin/keys/{key_id}", None),
            ("POST", f"/api/v1/admin/keys/{key_id}/rotate", {"overlap_seconds": 0}),
        ):
            refused = caller.call(method, path, body)
            assert _error(refused, 403)["code"] == "policy_denied", (role, method, path)
            row = gateway.audit_row(refused.headers["x-request-id"])
            assert row.endpoint.startswith("admin.keys.")
            assert row.policy_decision == "deny"
    with gateway.http() as http:
        anonymous = http.get("/api/v1/admin/keys")
    assert _error(anonymous, 401)["code"]
    # nothing was created, revoked or rotated
    listed = Admin(gateway, tenant).call("GET", "/api/v1/admin/keys").json()["data"]
    assert [(k["id"], k["state"]) for k in listed] == [(key_id, "active")]


def test_another_tenants_keys_are_not_found(gateway: Gateway) -> None:
    acme, globex = _tenant(), _tenant()
    theirs = Admin(gateway, acme).create()
    stranger = Admin(gateway, globex)
    untenanted = Admin(gateway, None)
    for caller in (stranger, untenanted):
        listed = caller.call("GET", "/api/v1/admin/keys")
        assert listed.status_code == 200
        assert theirs["id"] not in listed.text
        for method, path, body, action in (
            ("GET", f"/api/v1/admin/keys/{theirs['id']}", None, "admin.keys.read"),
            ("DELETE", f"/api/v1/admin/keys/{theirs['id']}", None, "admin.keys.revoke"),
            ("POST", f"/api/v1/admin/keys/{theirs['id']}/rotate", {"overlap_seconds": 0},
             "admin.keys.rotate"),
        ):  # fmt: skip
            refused = caller.call(method, path, body)
            assert _error(refused, 404)["code"] == "api_key_not_found"
            row = _audited(gateway, refused, action)
            assert row.error_code == "api_key_not_found"
    # as an id that does not exist at all
    unknown = stranger.call("GET", "/api/v1/admin/keys/0123456789ab")
    assert _error(unknown, 404)["code"] == "api_key_not_found"
    assert unknown.json()["error"]["message"] == "no API key '0123456789ab'"
    # odd ids are not found either, never a 500
    for odd in ("x" * 2000, "%C3%A9t%C3%A9", "0123456789ab%00", "%20", "lsg_0123"):
        for method in ("GET", "DELETE"):
            answer = stranger.call(method, f"/api/v1/admin/keys/{odd}")
            assert _error(answer, 404)["code"] == "api_key_not_found", (method, odd)
    # the key is untouched, and still works
    owner = Admin(gateway, acme).call("GET", f"/api/v1/admin/keys/{theirs['id']}")
    assert owner.json()["state"] == "active"
    assert owner.json()["replaced_by"] is None
    _chat(gateway, theirs["key"])


def test_a_new_key_cannot_be_of_another_tenant(gateway: Gateway) -> None:
    admin = Admin(gateway, _tenant())
    refused = admin.call("POST", "/api/v1/admin/keys", {**KEY, "tenant": "someone-else"})
    error = _error(refused, 400)
    assert (error["code"], error.get("param")) == ("unknown_field", "tenant")


def test_openapi_documents_the_admin_api(gateway: Gateway) -> None:
    with gateway.http() as http:
        paths = http.get("/openapi.json").json()["paths"]
    keys, one = paths["/api/v1/admin/keys"], paths["/api/v1/admin/keys/{key_id}"]
    rotate = paths["/api/v1/admin/keys/{key_id}/rotate"]["post"]
    assert set(keys) == {"get", "post"}
    assert set(one) == {"get", "delete"}
    create_schema = keys["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create_schema["required"] == ["user_id"]
    assert "tenant" not in create_schema["properties"]
    rotate_schema = rotate["requestBody"]["content"]["application/json"]["schema"]
    assert rotate_schema["required"] == ["overlap_seconds"]
    for operation in (keys["get"], keys["post"], one["get"], one["delete"], rotate):
        assert {"200", "400", "401", "403"} <= set(operation["responses"])
    assert "404" in one["get"]["responses"]


# --- bad bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code", "param"),
    [
        (b"", 400, "invalid_json", None),
        (b"{not json", 400, "invalid_json", None),
        (b"[]", 400, "invalid_json", None),
        (b'{"role": "user"}', 400, "missing_field", "user_id"),
        (b'{"user_id": 7}', 400, "invalid_field", "user_id"),
        (b'{"user_id": ""}', 400, "invalid_field", "user_id"),
        (b'{"user_id": "u", "colour": "red"}', 400, "unknown_field", "colour"),
        (b'{"user_id": "u", "expires_at": "2000-01-01T00:00:00Z"}', 400, "invalid_field",
         "expires_at"),
        (b'{"user_id": "u", "expires_at": "2999-01-01T00:00:00"}', 400, "invalid_field",
         "expires_at"),
        (b'{"user_id": "u", "expires_in_seconds": 0}', 400, "invalid_field",
         "expires_in_seconds"),
        (b'{"user_id": "u", "expires_in_seconds": "60"}', 400, "invalid_field",
         "expires_in_seconds"),
        (b'{"user_id": "u", "allowed_models": "gpt-emu"}', 400, "invalid_field",
         "allowed_models"),
        (b'{"user_id": "u", "allowed_models": ["gpt-emu", ""]}', 400, "invalid_field",
         "allowed_models.1"),
    ],
)  # fmt: skip
def test_bad_create_bodies(
    gateway: Gateway, raw: bytes, status: int, code: str, param: str | None
) -> None:
    tenant = _tenant()
    admin = Admin(gateway, tenant)
    refused = admin.call("POST", "/api/v1/admin/keys", raw=raw)
    error = _error(refused, status)
    assert (error["code"], error.get("param")) == (code, param)
    row = _audited(gateway, refused, "admin.keys.create")
    assert row.error_code == code
    assert admin.call("GET", "/api/v1/admin/keys").json()["data"] == []


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{}", "missing_field", "overlap_seconds"),
        (b'{"overlap_seconds": -1}', "invalid_field", "overlap_seconds"),
        (b'{"overlap_seconds": 99999999}', "invalid_field", "overlap_seconds"),
        (b'{"overlap_seconds": true}', "invalid_field", "overlap_seconds"),
        (b'{"overlap_seconds": 5, "also": 1}', "unknown_field", "also"),
    ],
)
def test_bad_rotate_bodies(gateway: Gateway, raw: bytes, code: str, param: str) -> None:
    admin = Admin(gateway, _tenant())
    key = admin.create()
    refused = admin.call("POST", f"/api/v1/admin/keys/{key['id']}/rotate", raw=raw)
    error = _error(refused, 400)
    assert (error["code"], error.get("param")) == (code, param)
    _audited(gateway, refused, "admin.keys.rotate")
    assert admin.call("GET", f"/api/v1/admin/keys/{key['id']}").json()["state"] == "active"
