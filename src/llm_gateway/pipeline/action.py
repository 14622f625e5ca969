"""The stages only management actions have: the policy's say on the action, and the action.

A management action (``models.list``, ``dlp.scan``; the audit, usage,
confirmation and admin endpoints to come) is authenticated and accounted by
the same stages as a chat call; in between, the policy decides on
``input.action``, and a denial refuses it. An action asked about several
targets (the models a listing may show) has each target decided, in one
policy call: the handler sees which are permitted (a listing shows those, and
is empty, not refused, when none is).
The decision's obligations (``dlp_mode``, ``ner``...) are on the context for
the handler to obey.
"""

from __future__ import annotations

from llm_gateway.pipeline.authorize import enforce, key_allows
from llm_gateway.pipeline.context import ActionCall, ActionResult, Next, Outcome, RequestContext
from llm_gateway.policy import Decision, PolicyService
from llm_gateway.policy.inputs import action_input


class AuthorizeAction:
    def __init__(self, policy: PolicyService, environment: str) -> None:
        self.policy = policy
        self.environment = environment

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.principal is not None
        call = _action(ctx)
        principal = ctx.principal
        if call.targets is None:
            document = action_input(
                principal, call.action, client_ip=ctx.client_ip, environment=self.environment
            )
            if call.subject is not None:
                document.update(await call.subject(ctx))
            ctx.decision = await self.policy.decide(document)
            enforce(ctx.decision)
            return await call_next(ctx)
        documents = [
            action_input(
                principal,
                call.action,
                client_ip=ctx.client_ip,
                environment=self.environment,
                **{call.target_field: target},
            )
            for target in call.targets
        ]
        decisions = await self.policy.decide_many(documents)
        call.permitted = tuple(
            t
            for t, d in zip(call.targets, decisions, strict=True)
            if d.allow and (call.target_field != "model" or key_allows(principal, t))
        )
        ctx.decision = _summary(decisions) if decisions else None
        return await call_next(ctx)


class RunAction:
    """The innermost stage of an action: its handler, whose answer is the outcome."""

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        return ActionResult(await _action(ctx).handler(ctx))


def _action(ctx: RequestContext) -> ActionCall:
    assert isinstance(ctx.payload, ActionCall), "an action stage ran on a chat call"
    return ctx.payload


def _summary(decisions: list[Decision]) -> Decision:
    """What the audit row says of a decision per target: the first allow, else the first."""
    return next((d for d in decisions if d.allow), decisions[0])
