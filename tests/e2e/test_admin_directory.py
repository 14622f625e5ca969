"""The admin API's directory (``/api/v1/admin/tenant``, ``/teams``, ``/users``) end to
end: teams and users made, listed, shown, changed and removed by an administrator of one
tenant, invisible to another tenant's (404 and absent from lists), refused to anyone but
administrators (403), bad bodies 400s naming the field, and every call audited under its
action's name."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Gateway
from tests.e2e.test_admin_keys import Admin, _audited, _error


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _ok(gw: Gateway, response: httpx.Response, action: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    _audited(gw, response, action)
    body: dict[str, Any] = response.json()
    return body


def test_teams_and_users_through_their_lifecycle(gateway: Gateway) -> None:
    tenant = _tenant()
    admin = Admin(gateway, tenant)
    made = _ok(gateway, admin.call("POST", "/api/v1/admin/teams", {"name": "red", "tier": "free"}),
               "admin.teams.create")  # fmt: skip
    assert (made["tenant"], made["name"], made["tier"]) == (tenant, "red", "free")
    listed = _ok(gateway, admin.call("GET", "/api/v1/admin/teams"), "admin.teams.list")
    assert [t["name"] for t in listed["data"]] == ["red"]
    changed = admin.call("PATCH", "/api/v1/admin/teams/red", {"tier": "premium"})
    assert _ok(gateway, changed, "admin.teams.update")["tier"] == "premium"
    shown = _ok(gateway, admin.call("GET", "/api/v1/admin/teams/red"), "admin.teams.read")
    assert shown["tier"] == "premium"
    again = admin.call("POST", "/api/v1/admin/teams", {"name": "red"})
    assert _error(again, 409)["code"] == "already_exists"

    user = admin.call("POST", "/api/v1/admin/users", {"user_id": "ada", "team": "red"})
    assert _ok(gateway, user, "admin.users.create")["team"] == "red"
    users = _ok(gateway, admin.call("GET", "/api/v1/admin/users"), "admin.users.list")
    assert [u["user_id"] for u in users["data"]] == ["ada"]
    patched = admin.call("PATCH", "/api/v1/admin/users/ada", {"tier": "free"})
    assert _ok(gateway, patched, "admin.users.update")["tier"] == "free"
    assert (
        _ok(gateway, admin.call("GET", "/api/v1/admin/users/ada"), "admin.users.read")["team"]
        == "red"
    )
    _ok(gateway, admin.call("DELETE", "/api/v1/admin/users/ada"), "admin.users.delete")
    gone = admin.call("GET", "/api/v1/admin/users/ada")
    assert _error(gone, 404)["code"] == "user_not_found"
    _ok(gateway, admin.call("DELETE", "/api/v1/admin/teams/red"), "admin.teams.delete")
    assert _error(admin.call("GET", "/api/v1/admin/teams/red"), 404)["code"] == "team_not_found"

    record = admin.call("PATCH", "/api/v1/admin/tenant", {"display_name": "Acme", "tier": "free"})
    assert _ok(gateway, record, "admin.tenants.update")["tier"] == "free"
    own = _ok(gateway, admin.call("GET", "/api/v1/admin/tenant"), "admin.tenants.read")
    assert (own["name"], own["display_name"]) == (tenant, "Acme")


def test_another_tenants_teams_and_users_are_not_found(gateway: Gateway) -> None:
    mine, theirs = Admin(gateway, _tenant()), Admin(gateway, _tenant())
    assert mine.call("POST", "/api/v1/admin/teams", {"name": "red"}).status_code == 200
    assert mine.call("POST", "/api/v1/admin/users", {"user_id": "ada"}).status_code == 200
    for method, path, body, action, code in (
        ("GET", "/api/v1/admin/teams/red", None, "admin.teams.read", "team_not_found"),
        ("PATCH", "/api/v1/admin/teams/red", {"tier": "x"}, "admin.teams.update", "team_not_found"),
        ("DELETE", "/api/v1/admin/teams/red", None, "admin.teams.delete", "team_not_found"),
        ("GET", "/api/v1/admin/users/ada", None, "admin.users.read", "user_not_found"),
        ("PATCH", "/api/v1/admin/users/ada", {"tier": "x"}, "admin.users.update", "user_not_found"),
        ("DELETE", "/api/v1/admin/users/ada", None, "admin.users.delete", "user_not_found"),
        ("POST", "/api/v1/admin/users", {"user_id": "bob", "team": "red"}, "admin.users.create",
         "team_not_found"),
    ):  # fmt: skip
        refused = theirs.call(method, path, body)
        assert _error(refused, 404)["code"] == code
        _audited(gateway, refused, action)
    assert theirs.call("GET", "/api/v1/admin/teams").json()["data"] == []
    assert theirs.call("GET", "/api/v1/admin/users").json()["data"] == []
    assert mine.call("GET", "/api/v1/admin/teams/red").status_code == 200  # still there


def test_only_administrators_manage_the_directory(gateway: Gateway) -> None:
    tenant = _tenant()
    for role in ("user", "auditor", "service"):
        caller = Admin(gateway, tenant, role)
        for method, path, action in (
            ("GET", "/api/v1/admin/tenant", "admin.tenants.read"),
            ("GET", "/api/v1/admin/teams", "admin.teams.list"),
            ("POST", "/api/v1/admin/users", "admin.users.create"),
        ):
            refused = caller.call(method, path, {"user_id": "x"})
            assert refused.status_code == 403, refused.text
            _audited(gateway, refused, action)


def test_bad_bodies_name_their_field(gateway: Gateway) -> None:
    admin = Admin(gateway, _tenant())
    for path, raw, code, param, action in (
        ("/api/v1/admin/teams", b'{"tier": "free"}', "missing_field", "name", "admin.teams.create"),
        ("/api/v1/admin/teams", b'{"name": ""}', "invalid_field", "name", "admin.teams.create"),
        ("/api/v1/admin/users", b'{"user_id": "u", "tenant": "x"}', "unknown_field", "tenant",
         "admin.users.create"),
    ):  # fmt: skip
        refused = admin.call("POST", path, raw=raw)
        error = _error(refused, 400)
        assert (error["code"], error["param"]) == (code, param)
        _audited(gateway, refused, action)
