"""The admin API's keys: ``/api/v1/admin/keys``, creating, listing, showing, revoking and
rotating API keys.

Each route is an action through the pipeline (``admin.keys.create``,
``admin.keys.list``, ``admin.keys.read``, ``admin.keys.revoke``,
``admin.keys.rotate``): authenticated, decided by the policy (the shipped one
allows administrators) and audited, its row's endpoint the action's name.
Whatever the policy allows, a caller manages only their own tenant's keys,
and a new key is of the caller's tenant: another tenant's key id is a 404
``api_key_not_found``, as an unknown one is. The key itself is in the answer
to ``create`` and ``rotate`` only, once. A bad body is a 400 naming the field
(``missing_field``, ``unknown_field``, ``invalid_field``), checked after the
caller is authenticated and allowed. The work is
:class:`llm_gateway.auth.key_admin.KeyAdmin`'s, which the CLI's ``keys`` uses too.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from llm_gateway.api import fields as f
from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.auth.api_keys import KeyInfo
from llm_gateway.auth.directory import BUDGETS, Directory, TeamInfo, UserInfo
from llm_gateway.auth.key_admin import MAX_OVERLAP_SECONDS, KeyAdmin, KeySpec
from llm_gateway.errors import InvalidRequest
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.runtime import AppState

router = APIRouter(tags=["admin"])

_KEY_ERRORS = ERRORS | {
    404: {"model": ERRORS[400]["model"], "description": "No such key (in the caller's tenant)"},
    409: {"model": ERRORS[400]["model"], "description": "The key is not active"},
}

_Name = Field(default=None, min_length=1, max_length=255)
_Short = Field(default=None, min_length=1, max_length=64)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateKey(_Body):
    """A new key of the caller's tenant."""

    user_id: str = Field(min_length=1, max_length=255)
    role: str = Field(default="user", min_length=1, max_length=64)
    tier: str | None = _Short
    team: str | None = _Name
    description: str | None = _Name
    environment: str | None = _Short
    expires_at: AwareDatetime | None = Field(default=None, description="ISO 8601, with a zone")
    expires_in_seconds: int | None = Field(default=None, ge=1, le=10 * 365 * 86_400)
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        default=None,
        max_length=100,
        description="the model names (models, chains, auto) the key may ask for, within what "
        "the policy allows; none: whatever the policy allows",
    )


class RotateKey(_Body):
    """How long the old key goes on working after its successor is made."""

    overlap_seconds: int = Field(ge=0, le=MAX_OVERLAP_SECONDS)


class KeyObject(BaseModel):
    """A key as the admin API shows it: everything but the key."""

    id: str
    user_id: str
    role: str
    tier: str | None
    team: str | None
    tenant: str | None
    environment: str | None
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None
    allowed_models: list[str] | None
    state: str


class NewKey(KeyObject):
    key: str = Field(description="the key itself: shown this once, never again")


class Rotated(BaseModel):
    new: NewKey
    old: KeyObject


class KeyList(BaseModel):
    data: list[KeyObject]


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """The request body, in the OpenAPI document (the handler reads and checks it)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/api/v1/admin/keys",
    responses=ERRORS,
    response_model=NewKey,
    openapi_extra=_documented(CreateKey),
)
async def create_key(request: Request) -> Response:
    """Create a key of the caller's tenant; the answer holds the key, this once."""
    return await run_action(request, "admin.keys.create", partial(_create, _admin(request)))


@router.get("/api/v1/admin/keys", responses=ERRORS, response_model=KeyList)
async def list_keys(request: Request) -> Response:
    """The caller's tenant's keys, oldest first (never the keys themselves)."""
    return await run_action(request, "admin.keys.list", partial(_list, _admin(request)))


@router.get("/api/v1/admin/keys/{key_id}", responses=_KEY_ERRORS, response_model=KeyObject)
async def show_key(request: Request, key_id: str) -> Response:
    """One key of the caller's tenant."""
    return await run_action(request, "admin.keys.read", partial(_show, _admin(request), key_id))


@router.delete("/api/v1/admin/keys/{key_id}", responses=_KEY_ERRORS, response_model=KeyObject)
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a key: refused from then on (within ``API_KEY_CACHE_SECONDS`` everywhere)."""
    handler = partial(_revoke, _admin(request), key_id)
    return await run_action(request, "admin.keys.revoke", handler)


@router.post(
    "/api/v1/admin/keys/{key_id}/rotate",
    responses=_KEY_ERRORS,
    response_model=Rotated,
    openapi_extra=_documented(RotateKey),
)
async def rotate_key(request: Request, key_id: str) -> Response:
    """A successor with the same attributes (``{"overlap_seconds": N}``): the old key works
    N seconds more, then is refused as ``api_key_rotated``."""
    handler = partial(_rotate, _admin(request), key_id)
    return await run_action(request, "admin.keys.rotate", handler)


def _admin(request: Request) -> KeyAdmin:
    state: AppState = request.app.state.gateway
    return KeyAdmin(state.keys)


def _tenant(ctx: RequestContext) -> str | None:
    assert ctx.principal is not None
    return ctx.principal.tenant


def shown(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.key_id, "user_id": info.user_id, "role": info.role, "tier": info.tier,
        "team": info.team, "tenant": info.tenant, "environment": info.environment,
        "description": info.description, "created_at": info.created_at.isoformat(),
        "expires_at": _iso(info.expires_at), "revoked_at": _iso(info.revoked_at),
        "replaced_by": info.replaced_by, "state": info.state(),
        "allowed_models": None if info.allowed_models is None else list(info.allowed_models),
    }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


_B = TypeVar("_B", bound=_Body)


async def _body(ctx: RequestContext, model: type[_B]) -> _B:
    raw = await ctx.read_body()
    f.decode_body(raw)  # the JSON-level errors, as every door words them
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidRequest:
    error = exc.errors(include_url=False)[0]
    path = ".".join(str(part) for part in error["loc"]) or None
    code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(
        error["type"], "invalid_field"
    )
    where = f"{path}: " if path else ""
    return _field_error(path, f"{where}{error['msg']}", code)


def _field_error(path: str | None, message: str, code: str = "invalid_field") -> InvalidRequest:
    """A 400 naming the field, as ``param`` in the error object (the audit API's way)."""
    return InvalidRequest(message, code=code, param=path, details={"param": path} if path else {})


async def _create(admin: KeyAdmin, ctx: RequestContext) -> dict[str, Any]:
    body = await _body(ctx, CreateKey)
    if body.expires_at is not None and body.expires_in_seconds is not None:
        raise _field_error(
            "expires_in_seconds", "expires_at, expires_in_seconds: give one or the other"
        )
    expires = body.expires_at
    if body.expires_in_seconds is not None:
        expires = datetime.now(UTC) + timedelta(seconds=body.expires_in_seconds)
    if expires is not None and expires <= datetime.now(UTC):
        raise _field_error("expires_at", "expires_at: expected a time in the future")
    spec = KeySpec(
        user_id=body.user_id, role=body.role, tier=body.tier, team=body.team,
        description=body.description, environment=body.environment, expires_at=expires,
        allowed_models=None if body.allowed_models is None else tuple(body.allowed_models),
    )  # fmt: skip
    key, info = await admin.create(spec, _tenant(ctx))
    return {**shown(info), "key": key}


async def _list(admin: KeyAdmin, ctx: RequestContext) -> dict[str, Any]:
    return {"data": [shown(k) for k in await admin.list(_tenant(ctx))]}


async def _show(admin: KeyAdmin, key_id: str, ctx: RequestContext) -> dict[str, Any]:
    return shown(await admin.show(key_id, _tenant(ctx)))


async def _revoke(admin: KeyAdmin, key_id: str, ctx: RequestContext) -> dict[str, Any]:
    return shown(await admin.revoke(key_id, _tenant(ctx)))


async def _rotate(admin: KeyAdmin, key_id: str, ctx: RequestContext) -> dict[str, Any]:
    body = await _body(ctx, RotateKey)
    key, new, old = await admin.rotate(key_id, _tenant(ctx), body.overlap_seconds)
    return {"new": {**shown(new), "key": key}, "old": shown(old)}


# --- the directory: the tenant's own record, its teams and users --------------------------

_DIRECTORY_ERRORS = ERRORS | {
    404: {"model": ERRORS[400]["model"], "description": "No such team or user (in the tenant)"},
    409: {"model": ERRORS[400]["model"], "description": "It exists already"},
}


class _Budgets(_Body):
    """A user's, team's or tenant's budgets, that scope's limits over ``rate_limits.yaml``'s
    (a user's over their tier's; null: not set, the file's apply): see ``auth.inheritance``."""

    requests_per_minute: int | None = Field(default=None, ge=0, le=10**9)
    tokens_per_month: int | None = Field(default=None, ge=0, le=10**15)
    cost_per_month_usd: float | None = Field(default=None, ge=0, le=10**12, allow_inf_nan=False)


class CreateTeam(_Budgets):
    name: str = Field(min_length=1, max_length=255)
    tier: str | None = _Short


class UpdateTeam(_Budgets):
    tier: str | None = _Short


class CreateUser(_Budgets):
    user_id: str = Field(min_length=1, max_length=255)
    team: str | None = _Name
    role: str | None = _Short
    tier: str | None = _Short


class UpdateUser(_Budgets):
    team: str | None = _Name
    role: str | None = _Short
    tier: str | None = _Short


class UpdateTenant(_Budgets):
    display_name: str | None = _Name
    tier: str | None = _Short


def _directory(request: Request) -> Directory:
    """The gateway's one directory service, whose changes clear this process's cache of
    what callers inherit (another replica's within ``DIRECTORY_CACHE_SECONDS``)."""
    state: AppState = request.app.state.gateway
    return state.inheritance.directory


def _changes(body: BaseModel) -> dict[str, Any]:
    """The fields the body names (null clears one): the others stay as they are."""
    return {name: getattr(body, name) for name in body.model_fields_set}


def _budgets(body: _Budgets) -> dict[str, Any]:
    """A new record's budgets, each the body's or none."""
    return {name: getattr(body, name) for name in BUDGETS}


@router.get("/api/v1/admin/tenant", responses=ERRORS)
async def show_tenant(request: Request) -> Response:
    """The caller's own tenant's record."""

    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return asdict(await _directory(request).tenant(_tenant(ctx)))

    return await run_action(request, "admin.tenants.read", handler)


@router.patch("/api/v1/admin/tenant", responses=ERRORS, openapi_extra=_documented(UpdateTenant))
async def update_tenant(request: Request) -> Response:
    """Change the caller's own tenant's display name, tier or budgets."""

    async def handler(ctx: RequestContext) -> dict[str, Any]:
        body = await _body(ctx, UpdateTenant)
        return asdict(await _directory(request).update_tenant(_tenant(ctx), **_changes(body)))

    return await run_action(request, "admin.tenants.update", handler)


@router.post(
    "/api/v1/admin/teams", responses=_DIRECTORY_ERRORS, openapi_extra=_documented(CreateTeam)
)
async def create_team(request: Request) -> Response:
    """A team of the caller's tenant, with its tier and budgets (each optional)."""

    async def handler(ctx: RequestContext) -> dict[str, Any]:
        body = await _body(ctx, CreateTeam)
        made = await _directory(request).create_team(
            _tenant(ctx), body.name, body.tier, **_budgets(body)
        )
        return _info(made)

    return await run_action(request, "admin.teams.create", handler)


@router.get("/api/v1/admin/teams", responses=ERRORS)
async def list_teams(request: Request) -> Response:
    """The caller's tenant's teams, by name."""

    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return {"data": [_info(t) for t in await _directory(request).teams(_tenant(ctx))]}

    return await run_action(request, "admin.teams.list", handler)


@router.get("/api/v1/admin/teams/{name}", responses=_DIRECTORY_ERRORS)
async def show_team(request: Request, name: str) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return _info(await _directory(request).team(_tenant(ctx), name))

    return await run_action(request, "admin.teams.read", handler)


@router.patch(
    "/api/v1/admin/teams/{name}", responses=_DIRECTORY_ERRORS, openapi_extra=_documented(UpdateTeam)
)
async def update_team(request: Request, name: str) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        body = await _body(ctx, UpdateTeam)
        changed = await _directory(request).update_team(_tenant(ctx), name, **_changes(body))
        return _info(changed)

    return await run_action(request, "admin.teams.update", handler)


@router.delete("/api/v1/admin/teams/{name}", responses=_DIRECTORY_ERRORS)
async def delete_team(request: Request, name: str) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return _info(await _directory(request).delete_team(_tenant(ctx), name))

    return await run_action(request, "admin.teams.delete", handler)


@router.post(
    "/api/v1/admin/users", responses=_DIRECTORY_ERRORS, openapi_extra=_documented(CreateUser)
)
async def create_user(request: Request) -> Response:
    """A user of the caller's tenant (their team, if any, one of its teams), with their
    budgets (each optional), the user scope's limits over their tier's."""

    async def handler(ctx: RequestContext) -> dict[str, Any]:
        body = await _body(ctx, CreateUser)
        made = await _directory(request).create_user(
            _tenant(ctx), body.user_id, team=body.team, role=body.role, tier=body.tier,
            **_budgets(body),
        )  # fmt: skip
        return _info(made)

    return await run_action(request, "admin.users.create", handler)


@router.get("/api/v1/admin/users", responses=ERRORS)
async def list_users(request: Request) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return {"data": [_info(u) for u in await _directory(request).users(_tenant(ctx))]}

    return await run_action(request, "admin.users.list", handler)


@router.get("/api/v1/admin/users/{user_id}", responses=_DIRECTORY_ERRORS)
async def show_user(request: Request, user_id: str) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return _info(await _directory(request).user(_tenant(ctx), user_id))

    return await run_action(request, "admin.users.read", handler)


@router.patch(
    "/api/v1/admin/users/{user_id}",
    responses=_DIRECTORY_ERRORS,
    openapi_extra=_documented(UpdateUser),
)
async def update_user(request: Request, user_id: str) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        body = await _body(ctx, UpdateUser)
        changed = await _directory(request).update_user(_tenant(ctx), user_id, **_changes(body))
        return _info(changed)

    return await run_action(request, "admin.users.update", handler)


@router.delete("/api/v1/admin/users/{user_id}", responses=_DIRECTORY_ERRORS)
async def delete_user(request: Request, user_id: str) -> Response:
    async def handler(ctx: RequestContext) -> dict[str, Any]:
        return _info(await _directory(request).delete_user(_tenant(ctx), user_id))

    return await run_action(request, "admin.users.delete", handler)


def _info(info: TeamInfo | UserInfo) -> dict[str, Any]:
    return {**asdict(info), "created_at": info.created_at.isoformat()}
