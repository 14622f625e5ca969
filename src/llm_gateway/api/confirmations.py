"""The confirmations API: the open confirmations a caller may act on, and acting on them.

``GET /api/v1/confirmations`` and ``GET /api/v1/confirmations/{id}`` show
them; ``POST /api/v1/confirmations/{id}/confirm`` (``{"phrase"}``) approves
one and ``POST .../cancel`` discards it. Each is an action through the
pipeline (``confirmations.read``, ``confirmation.approve``,
``confirmation.cancel``), decided by the policy and audited.

Who may act: the requester, or, when the rule names ``approvers``, a person
with one of those roles who is not the requester (then only they may
approve), or anyone else a rule of the policy names: the confirmation is in
the policy's input (``input.confirmation``, with the caller's ``relation`` to
it: ``requester``, ``approver`` or ``other``), and the shipped policy lets
only requesters and approvers act, and administrators. An approval never
comes from the requester when the rule names approvers. Never across
tenants: another tenant's id is not found. An approval by API does not
release anything by itself: the requester's next message in the
conversation gets what was held.
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
from llm_gateway.hitl.challenge import confirmation_object, risk_of
from llm_gateway.hitl.confirmations import OPEN, Confirmation
from llm_gateway.pipeline.context import ActionCall, RequestContext
from llm_gateway.policy import action_input
from llm_gateway.runtime import AppState

Relation = Literal["requester", "approver", "other"]

router = APIRouter(tags=["confirmations"])


@router.get("/api/v1/confirmations", responses=ERRORS)
async def list_confirmations(request: Request) -> Response:
    """The open confirmations of the caller's tenant that the caller may act on."""
    state: AppState = request.app.state.gateway
    return await run_action(request, "confirmations.read", partial(_list, state))


@router.get("/api/v1/confirmations/{confirmation_id}", responses=ERRORS)
async def get_confirmation(request: Request, confirmation_id: str) -> Response:
    """One open confirmation the caller may act on."""
    subject = _Subject(request.app.state.gateway, confirmation_id)
    return await run_action(request, "confirmations.read", subject.show, subject=subject)


@router.post("/api/v1/confirmations/{confirmation_id}/confirm", responses=ERRORS)
async def confirm(request: Request, confirmation_id: str) -> Response:
    """Approve it with its exact phrase (``{"phrase": "confirm delete 7 instances"}``)."""
    subject = _Subject(request.app.state.gateway, confirmation_id)
    handler = partial(subject.decide, "approved")
    return await run_action(request, "confirmation.approve", handler, subject=subject)


@router.post("/api/v1/confirmations/{confirmation_id}/cancel", responses=ERRORS)
async def cancel(request: Request, confirmation_id: str) -> Response:
    """Discard it: nothing held is released."""
    subject = _Subject(request.app.state.gateway, confirmation_id)
    handler = partial(subject.decide, "cancelled")
    return await run_action(request, "confirmation.cancel", handler, subject=subject)


def relation_of(caller: Principal, c: Confirmation) -> Relation:
    if caller.user_id == c.user_id:
        return "requester"
    return "approver" if caller.role in c.approvers else "other"


def policy_view(caller: Principal, c: Confirmation) -> dict[str, Any]:
    """``input.confirmation`` for this caller (its shape: :mod:`llm_gateway.policy.inputs`)."""
    return {
        "id": c.id, "rule": c.rule, "action": c.verb, "scope": list(c.scope),
        "scope_count": len(c.scope), "environment": c.environment,
        "risk": risk_of(c.environment), "requires_mfa": c.requires_mfa,
        "approvers": list(c.approvers), "requested_by": c.user_id,
        "relation": relation_of(caller, c),
    }  # fmt: skip


class _Subject:
    """The confirmation an action is about, read once the caller is known: the policy
    decides on it (``input.confirmation``), then the handler acts on the same one."""

    def __init__(self, state: AppState, confirmation_id: str) -> None:
        self.state = state
        self.confirmation_id = confirmation_id
        self.found: Confirmation | None = None

    async def __call__(self, ctx: RequestContext) -> dict[str, Any]:
        assert ctx.principal is not None
        c = await self.state.confirmations.get(self.confirmation_id, tenant=ctx.principal.tenant)
        if c is None or c.status not in OPEN:
            return {}  # the handler says it is not found
        self.found = c
        assert isinstance(ctx.payload, ActionCall)
        # Until the action succeeds, its row says it was refused (by the policy or a check).
        ctx.payload.confirmation = f"{c.id}:api-refused"
        return {"confirmation": policy_view(ctx.principal, c)}

    def open(self) -> Confirmation:
        """The confirmation, which the policy let this caller act on."""
        if self.found is None:
            raise ConfirmationNotFound(f"no open confirmation {self.confirmation_id!r}")
        return self.found

    async def show(self, ctx: RequestContext) -> dict[str, Any]:
        c = self.open()
        assert isinstance(ctx.payload, ActionCall)
        ctx.payload.confirmation = f"{c.id}:api-read"
        return _shown(c)

    async def decide(
        self, status: Literal["approved", "cancelled"], ctx: RequestContext
    ) -> dict[str, Any]:
        return await _decide(self.state, self.open(), status, ctx)


def _shown(c: Confirmation) -> dict[str, Any]:
    return {**confirmation_object(c), "requested_by": c.user_id}


async def _list(state: AppState, ctx: RequestContext) -> dict[str, Any]:
    """The caller's own and those they approve by their role; others the policy decides."""
    caller = ctx.principal
    assert caller is not None
    found = await state.confirmations.open_for_tenant(caller.tenant)
    others = [c for c in found if relation_of(caller, c) == "other"]
    documents = [
        {**action_input(caller, "confirmations.read", client_ip=ctx.client_ip,
                        environment=state.settings.policy.environment),
         "confirmation": policy_view(caller, c)}
        for c in others
    ]  # fmt: skip
    decisions = await state.policy.decide_many(documents) if documents else []
    refused = {c.id for c, d in zip(others, decisions, strict=True) if not d.allow}
    return {"data": [_shown(c) for c in found if c.id not in refused]}


async def _decide(
    state: AppState,
    c: Confirmation,
    status: Literal["approved", "cancelled"],
    ctx: RequestContext,
) -> dict[str, Any]:
    assert ctx.principal is not None
    assert isinstance(ctx.payload, ActionCall)
    caller = ctx.principal
    mfa = ""
    if status == "approved":
        data = f.decode_body(await ctx.read_body())
        if normalised(f.req_str(data, "phrase")) != normalised(c.phrase):
            raise InvalidRequest(
                f"the phrase does not match; it is {c.phrase!r}",
                code="confirmation_phrase_mismatch", param="phrase",
            )  # fmt: skip
        if c.approvers and caller.user_id == c.user_id:
            raise ConfirmationRefused(
                f"this confirmation needs the approval of someone else, as {'/'.join(c.approvers)}"
            )
        code = f.opt_str(data, "mfa_code")
        if c.requires_mfa and not (
            code and await state.mfa.verify(caller.user_id, caller.tenant, code)
        ):
            raise ConfirmationRefused("this confirmation needs a valid MFA code (mfa_code)")
        mfa = "+mfa" if c.requires_mfa else ""
        if time.time() < c.cooldown_until:
            raise InvalidRequest(
                "too soon after the challenge: read it again, then confirm",
                code="confirmation_too_soon",
            )
    decided = await state.confirmations.decide(c, status)
    if decided is None:
        raise ConfirmationNotFound(f"no open confirmation {c.id!r}")
    ctx.payload.confirmation = f"{c.id}:api-{status}{mfa}"
    return _shown(decided)
