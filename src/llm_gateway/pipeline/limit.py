"""Stage 3: rate limits and budgets, after the policy allowed the call and before DLP.

The request is counted against every scope of its caller at once (see
:mod:`llm_gateway.ratelimit`); its token and cost budgets are reserved with an
estimate here and settled with the real use when the request is recorded. A
refusal is a 429 naming the scope; whatever the outcome, the windows found
are on the context for the front door's rate-limit headers.
"""

from __future__ import annotations

from llm_gateway.pipeline.context import Next, Outcome, RequestContext
from llm_gateway.ratelimit import Limiter
from llm_gateway.tokens import quick_estimate


class Limit:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.principal is not None
        call = ctx.call
        chat, resolution = call.request, call.resolution
        assert chat is not None
        assert resolution is not None
        candidates = resolution.candidates
        answer = chat.max_tokens or max(d.default_max_tokens for d in candidates)
        prompt = quick_estimate(chat.texts())
        prices = [d.price.cost(prompt, answer) for d in candidates if d.price is not None]
        admission = ctx.limits = await self.limiter.admit(
            ctx.principal,
            ctx.client_ip,
            request_id=ctx.request_id,
            tokens=prompt + answer,
            cost_usd=max(prices, default=0.0),
        )
        if admission.refusal is not None:
            raise admission.refusal
        return await call_next(ctx)
