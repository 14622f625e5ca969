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
        failure: GatewayError | None = None
        for deployment in resolution.candidates:
            if not deployment.enabled:
                continue
            if failure is not None and not _another_may_answer(failure):
                break
            attempt = Attempt(deployment)
            ctx.attempts.append(attempt)
            started = time.perf_counter()
            try:
                outcome = await call_next(ctx)
            except GatewayError as error:
                attempt.status, attempt.error_code = error.status, error.code
                attempt.latency_ms = _since(started)
                failure = error
                continue
            attempt.status, attempt.latency_ms = 200, _since(started)
            return outcome
        if failure is not None:
            raise failure
        raise ModelUnavailable(f"the model {resolution.requested!r} is not available right now")


def _another_may_answer(error: GatewayError) -> bool:
    return isinstance(error, UpstreamError) and error.retryable


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
