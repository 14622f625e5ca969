"""Stage 2: may this principal make this call? The policy decides, and its obligations stick.

A model that does not exist is the caller's mistake and is reported as such
(404) before the policy is asked; a model that exists but is not allowed is a
denial (403). A denial carries the policy's reasons to the caller; a policy that cannot
decide denies too (fail closed), with its own code so that operators can tell
a broken policy from a refusal. An allow may come with obligations: a cap on
``max_tokens`` applied here, and the features the caller may use (a call
asking for one outside them is refused here); ``deanonymize`` and ``dlp_mode``
are read by the DLP stage from ``ctx.decision``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection

from llm_gateway.chat import Outcome
from llm_gateway.errors import PolicyDenied, PolicyFailed
from llm_gateway.pipeline.context import Next, RequestContext
from llm_gateway.pipeline.route import model_not_found
from llm_gateway.policy import Decision, PolicyService
from llm_gateway.policy.inputs import chat_input


class Authorize:
    def __init__(self, policy: PolicyService, environment: str, models: Collection[str]) -> None:
        self.policy = policy
        self.environment = environment
        self.models = models

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.principal is not None
        assert ctx.chat is not None
        chat = ctx.chat
        if chat.model not in self.models:
            ctx.model_requested = unknown_model(chat.model)
            raise model_not_found(chat.model)
        ctx.model_requested = chat.model
        document = chat_input(
            ctx.principal,
            chat,
            endpoint=ctx.endpoint,
            client_ip=ctx.client_ip,
            environment=self.environment,
        )
        decision = ctx.decision = await self.policy.decide(document)
        enforce(decision)
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
        cap = decision.obligations.max_tokens
        if cap is not None:
            chat.max_tokens = min(chat.max_tokens or cap, cap)
        return await call_next(ctx)


def unknown_model(name: str) -> str:
    """How a model name the gateway does not serve is recorded: a digest, never the text
    (a caller can put anything in it, a key included)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"unknown:sha256:{digest[:16]}"


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
