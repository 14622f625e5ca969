"""Stage 2: may this principal make this call? The policy decides, and its obligations stick.

The requested name is resolved first (:mod:`llm_gateway.routing`): a model
that does not exist is the caller's mistake and is reported as such (404)
before the policy is asked; a model that exists but is not allowed is a
denial (403). The policy decides on the name asked for, then on each candidate
deployment with another name (a chain's or ``auto``'s members): those it does
not allow are dropped, and a request none of whose candidates is allowed is
denied. A denial carries the policy's reasons to the caller; a policy that cannot
decide denies too (fail closed), with its own code so that operators can tell
a broken policy from a refusal. An allow may come with obligations: a cap on
``max_tokens`` applied here, and the features the caller may use (a call
asking for one outside them is refused here); ``deanonymize`` and ``dlp_mode``
are read by the DLP stage from ``ctx.decision``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_gateway.auth.principal import Principal
from llm_gateway.errors import GatewayError, InvalidRequest, PolicyDenied, PolicyFailed
from llm_gateway.pipeline.context import Next, Outcome, RequestContext
from llm_gateway.policy import Decision, PolicyService
from llm_gateway.policy.inputs import chat_input
from llm_gateway.routing import Resolution, Resolver, unknown_model
from llm_gateway.routing.strategies import STRATEGY_NAMES

__all__ = ["STRATEGY_FEATURE", "STRATEGY_HEADER", "Authorize", "enforce", "unknown_model"]

#: A request may name auto's strategy in this header, if its policy grants this feature.
STRATEGY_HEADER = "x-gateway-strategy"
STRATEGY_FEATURE = "routing_strategy"


class Authorize:
    def __init__(self, policy: PolicyService, environment: str, resolver: Resolver) -> None:
        self.policy = policy
        self.environment = environment
        self.resolver = resolver

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.principal is not None
        call = ctx.call
        chat = call.request
        assert chat is not None
        try:
            resolution = self.resolver.resolve(chat.model)
        except GatewayError:
            call.model_requested = unknown_model(chat.model)
            raise
        call.model_requested = chat.model
        document = chat_input(
            ctx.principal,
            chat,
            endpoint=ctx.endpoint,
            client_ip=ctx.client_ip,
            environment=self.environment,
        )
        if call.strategy is not None:  # naming a strategy is a feature the policy grants
            if call.strategy not in STRATEGY_NAMES:
                raise InvalidRequest(
                    f"{STRATEGY_HEADER} must be one of {', '.join(STRATEGY_NAMES)}",
                    param=STRATEGY_HEADER,
                )
            document["request"]["features"].append(STRATEGY_FEATURE)
        decision = ctx.decision = await self.policy.decide(document)
        enforce(decision)
        if not key_allows(ctx.principal, chat.model):
            reason = f"model not allowed for this API key: {chat.model}"
            ctx.decision = dataclasses.replace(
                decision, allow=False, reasons=(*decision.reasons, reason)
            )
            raise PolicyDenied(
                f"this API key may not call {chat.model!r}", details={"reasons": [reason]}
            )
        refused = [f for f in document["request"]["features"] if not decision.permits(f)]
        if refused:
            reasons = tuple(f"feature not allowed: {f}" for f in refused)
            # Recorded as the denial it is, not as the policy's allow.
            ctx.decision = dataclasses.replace(
                decision, allow=False, reasons=decision.reasons + reasons
            )
            raise PolicyDenied(
                f"the policy does not allow {', '.join(refused)} for this caller",
                details={"reasons": list(reasons)},
            )
        call.resolution = await self._permitted(resolution, document)
        cap = decision.obligations.max_tokens
        if cap is not None:
            chat.max_tokens = min(chat.max_tokens or cap, cap)
        return await call_next(ctx)

    async def _permitted(self, resolution: Resolution, document: dict[str, Any]) -> Resolution:
        """The candidates the policy allows: each named otherwise than the request is decided."""
        candidates = resolution.candidates
        if len(candidates) == 1 and candidates[0].name == resolution.requested:
            return resolution  # the common case: the name is the model, already decided
        # A model switched off is never tried, so it is not worth a decision.
        others = sorted({d.name for d in candidates if d.enabled} - {resolution.requested})
        documents = [_with_model(document, name) for name in others]
        decisions = await self.policy.decide_many(documents)
        refused = {name for name, d in zip(others, decisions, strict=True) if not d.allow}
        kept = tuple(d for d in resolution.candidates if d.name not in refused)
        if refused and not any(d.enabled for d in kept):
            raise PolicyDenied(
                "the policy allows none of the models that could serve this request",
                details={"reasons": [f"model not allowed: {name}" for name in sorted(refused)]},
            )
        return Resolution(resolution.requested, kept, resolution.kind)


def key_allows(principal: Principal, model: str) -> bool:
    """Whether the caller's API key may name ``model`` (a model, a chain or ``auto``): a
    ceiling over what the policy allows, when the key has a list of its own."""
    return principal.allowed_models is None or model in principal.allowed_models


def _with_model(document: dict[str, Any], model: str) -> dict[str, Any]:
    return {**document, "request": {**document["request"], "model": model}}


def enforce(decision: Decision) -> None:
    """Raise the caller-facing error for a decision that does not allow."""
    if decision.error is not None:
        raise PolicyFailed(
            "the request was denied because the policy could not be evaluated",
            details={"reasons": list(decision.reasons)},
        )
    if not decision.allow:
        raise PolicyDenied(
            "the policy does not allow this request",
            details={"reasons": list(decision.reasons)},
        )
