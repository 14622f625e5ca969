"""Stage 5: which deployment serves the request, trying the candidates in order.

``Authorize`` resolved the requested name into candidates, best first, and
kept those the policy allows. Each try is an :class:`Attempt` on the context,
listed in the audit row. A candidate that is switched off is passed over; one
that fails before answering with a failure another deployment may not share
(an :class:`~llm_gateway.errors.UpstreamError` marked ``retryable``: unreachable,
timing out, overloaded, failing with a 5xx) hands over to the next; the last
failure is the caller's answer. A started stream is never retried: its first
bytes may already be with the caller.

With one candidate per name, as today, this is one attempt. Strategies,
circuit breakers and stale-if-error grow here.
"""

from __future__ import annotations

import time

from llm_gateway.errors import GatewayError, ModelUnavailable, UpstreamError
from llm_gateway.pipeline.context import Attempt, Next, Outcome, RequestContext


class Route:
    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        resolution = ctx.call.resolution
        assert resolution is not None
        usable = [d for d in resolution.candidates if d.enabled]
        if not usable:
            raise ModelUnavailable(f"the model {resolution.requested!r} is not available right now")
        for position, deployment in enumerate(usable, 1):
            attempt = Attempt(deployment)
            ctx.attempts.append(attempt)
            started = time.perf_counter()
            try:
                outcome = await call_next(ctx)
            except GatewayError as error:
                attempt.status, attempt.error_code = error.status, error.code
                attempt.latency_ms = _since(started)
                if position == len(usable) or not _another_may_answer(error):
                    raise
                continue
            attempt.status, attempt.latency_ms = 200, _since(started)
            return outcome
        raise AssertionError("unreachable: the last candidate returns or raises")


def _another_may_answer(error: GatewayError) -> bool:
    return isinstance(error, UpstreamError) and error.retryable


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
