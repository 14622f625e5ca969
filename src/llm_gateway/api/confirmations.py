"""The confirmations API: the open confirmations a caller may act on, and acting on them.

``GET /api/v1/confirmations`` and ``GET /api/v1/confirmations/{id}`` show
them; ``POST /api/v1/confirmations/{id}/confirm`` (``{"phrase"}``) approves
one and ``POST .../cancel`` discards it. Each is an action through the
pipeline (``confirmations.read``, ``confirmation.approve``,
``confirmation.cancel``), decided by the policy and audited.

Who may act: the requester, or, when the rule names ``approvers``, a person
with one of those roles who is not the requester (then only they may
approve). Never across tenants: another tenant's id is not found. An
approval by API does not release anything by itself: the requester's next
message in the conversation gets what was held.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from llm_gateway.api import fields as f
from llm_gateway.api.actions import ERRORS, run_action
from llm_gateway.auth.principal import Principal
from llm_gateway.errors import ConfirmationNotFound, ConfirmationRefused, InvalidRequest
from llm_gateway.hitl import normalised
from llm_gateway.hitl.challenge import confirmation_object
from llm_gateway.hitl.confirmations import OPEN, Confirmation
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.runtime import AppState

router = APIRouter(tags=["confirmations"])


@router.get("/api/v1/confirmations", responses=ERRORS)
async def list_confirmations(request: Request) -> Response:
    """The open confirmations of the caller's tenant that the caller may act on."""
    state: AppState = request.app.state.gateway
    return await run_action(request, "confirmations.read", partial(_list, state))


@router.get("/api/v1/confirmations/{confirmation_id}", responses=ERRORS)
async def get_confirmation(request: Request, confirmation_id: str) -> Response:
    """One open confirmation the caller may act on."""
    state: AppState = request.app.state.gateway
    return await run_action(request, "confirmations.read", partial(_one, state, confirmation_id))


@router.post("/api/v1/confirmations/{confirmation_id}/confirm", responses=ERRORS)
async def confirm(request: Request, confirmation_id: str) -> Response:
    """Approve it with its exact phrase (``{"phrase": "confirm delete 7 instances"}``)."""
    state: AppState = request.app.state.gateway
    handler = partial(_decide, state, confirmation_id, "approved")
    return await run_action(request, "confirmation.approve", handler)


@router.post("/api/v1/confirmations/{confirmation_id}/cancel", responses=ERRORS)
async def cancel(request: Request, confirmation_id: str) -> Response:
    """Discard it: nothing held is released."""
    state: AppState = request.app.state.gateway
    handler = partial(_decide, state, confirmation_id, "cancelled")
    return await run_action(request, "confirmation.cancel", handler)


def _may_act(caller: Principal, c: Confirmation) -> bool:
    if c.approvers:
        return caller.role in c.approvers or caller.user_id == c.user_id
    return caller.user_id == c.user_id


def _shown(c: Confirmation) -> dict[str, Any]:
    return {**confirmation_object(c), "requested_by": c.user_id}


async def _list(state: AppState, ctx: RequestContext) -> dict[str, Any]:
    assert ctx.principal is not None
    found = await state.confirmations.open_for_tenant(ctx.principal.tenant)
    return {"data": [_shown(c) for c in found if _may_act(ctx.principal, c)]}


async def _found(state: AppState, ctx: RequestContext, confirmation_id: str) -> Confirmation:
    assert ctx.principal is not None
    c = await state.confirmations.get(confirmation_id, tenant=ctx.principal.tenant)
    if c is None or c.status not in OPEN or not _may_act(ctx.principal, c):
        raise ConfirmationNotFound(f"no open confirmation {confirmation_id!r} for this caller")
    return c


async def _one(state: AppState, confirmation_id: str, ctx: RequestContext) -> dict[str, Any]:
    return _shown(await _found(state, ctx, confirmation_id))


async def _decide(
    state: AppState,
    confirmation_id: str,
    status: Literal["approved", "cancelled"],
    ctx: RequestContext,
) -> dict[str, Any]:
    assert ctx.principal is not None
    assert isinstance(ctx.payload, ActionCall)
    c = await _found(state, ctx, confirmation_id)
    ctx.payload.confirmation = f"{c.id}:api-{status}"
    caller = ctx.principal
    if status == "approved":
        data = f.decode_body(await ctx.read_body())
        if normalised(f.req_str(data, "phrase")) != normalised(c.phrase):
            raise InvalidRequest(
                f"the phrase does not match; it is {c.phrase!r}",
                code="confirmation_phrase_mismatch", param="phrase",
            )  # fmt: skip
        if c.approvers and (caller.role not in c.approvers or caller.user_id == c.user_id):
            raise ConfirmationRefused(
                f"this confirmation needs the approval of someone else, as {'/'.join(c.approvers)}"
            )
        code = f.opt_str(data, "mfa_code")
        if c.requires_mfa and not (
            code and await state.mfa.verify(caller.user_id, caller.tenant, code)
        ):
            raise ConfirmationRefused("this confirmation needs a valid MFA code (mfa_code)")
        if c.requires_mfa:
            ctx.payload.confirmation += "+mfa"
        if time.time() < c.cooldown_until:
            raise InvalidRequest(
                "too soon after the challenge: read it again, then confirm",
                code="confirmation_too_soon",
            )
    decided = await state.confirmations.decide(c, status)
    if decided is None:
        raise ConfirmationNotFound(f"no open confirmation {confirmation_id!r} for this caller")
    return _shown(decided)
