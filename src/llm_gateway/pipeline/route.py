"""Stage 5: which deployment serves the request, trying this request's candidates in order.

``Authorize`` resolved the requested name into candidates and kept those the
policy allows; the :class:`~llm_gateway.routing.Router` orders them for this
request (strategy, experiments, rules, sticky sessions). Each try is an
:class:`Attempt` on the context, listed in the audit row.

A candidate that cannot be tried now (switched off, down, its circuit open,
at its ``max_concurrent``) is passed over without an attempt. A failure that
another deployment may not share (an :class:`~llm_gateway.errors.UpstreamError`
marked ``retryable``: unreachable, timing out, rate-limited, failing with a
5xx, answering malformed) hands over to the next; a failure that is the
caller's own (a 4xx the provider gave for this request) ends the request. A
started stream is never retried: its first bytes may already be with the
caller; a stream that breaks later ends with the front door's error event.

Each attempt is bounded by its model's ``timeout_ms`` (in the provider call)
and by what is left of ``ROUTING_DEADLINE_MS`` for the whole request. When
nothing could be tried, the answer is a 503 whose code says why:
``all_models_down``, ``all_circuits_open`` or ``all_models_busy`` (after
waiting up to ``ROUTING_BUSY_WAIT_MS`` for a model to free up).

With stale-if-error on (:mod:`llm_gateway.routing.cache`), a whole answer is
kept, and served in place of a failure that is the models' (not the
caller's) when there is one for the same request: marked ``stale``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from llm_gateway.chat import ChatResponse, EventStream, StreamEnd, StreamEvent
from llm_gateway.config import Deployment
from llm_gateway.errors import (
    AllCircuitsOpen,
    AllModelsBusy,
    AllModelsDown,
    GatewayError,
    ModelUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from llm_gateway.pipeline.context import Attempt, Next, Outcome, RequestContext
from llm_gateway.routing import Facts, Plan, Router, Slot, StaleCache, Unusable
from llm_gateway.settings import RoutingSettings
from llm_gateway.streams import as_stream


class Route:
    def __init__(
        self, router: Router, settings: RoutingSettings, cache: StaleCache | None = None
    ) -> None:
        self.router = router
        self.tracker = router.tracker
        self.cache = cache
        self.deadline_s = settings.deadline_ms / 1000
        self.busy_wait_s = settings.busy_wait_ms / 1000

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        resolution = ctx.call.resolution
        assert resolution is not None
        facts = None
        if resolution.kind == "auto" and ctx.chat is not None and ctx.principal is not None:
            facts = Facts(ctx.chat, user_id=ctx.principal.user_id, tier=ctx.principal.tier)
        tenant = ctx.principal.tenant if ctx.principal is not None else None
        plan = await self.router.plan(
            resolution, facts, tenant=tenant, conversation_id=ctx.conversation_id,
            region=ctx.region, strategy=ctx.call.strategy,
        )  # fmt: skip
        ctx.call.route = plan.route
        cache, chat = self.cache, ctx.chat
        if cache is None or chat is None:
            return await self._attempts(ctx, call_next, plan)
        revision = ctx.decision.revision if ctx.decision is not None else ""
        key = cache.key(chat, requested=resolution.requested, tenant=tenant,
                        policy_revision=revision)  # fmt: skip
        try:
            outcome = await self._attempts(ctx, call_next, plan)
        except GatewayError as error:
            stale = await cache.load(key) if _the_models_fault(error) else None
            if stale is None:
                raise
            ctx.call.route, ctx.call.stale = "stale", True
            return as_stream(stale) if chat.stream else stale
        if isinstance(outcome, ChatResponse):
            cache.save_soon(key, outcome, now_ms=int(time.time() * 1000))
        return outcome

    async def _attempts(self, ctx: RequestContext, call_next: Next, plan: Plan) -> Outcome:
        """The candidates in turn, once more after a wait if every one was full."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        waited = False
        while True:
            outcome, failure, passed_over = await self._try(ctx, call_next, plan, deadline)
            if outcome is not None:
                return outcome
            if failure is not None:
                raise failure
            if passed_over == "busy" and not waited and self.busy_wait_s > 0:
                waited = True  # one wait for a slot, then the candidates once more
                await self.tracker.wait_for_slot(min(self.busy_wait_s, deadline - loop.time()))
                continue
            assert ctx.call.resolution is not None
            raise _nothing_usable(ctx.call.resolution.requested, passed_over)

    async def _try(
        self, ctx: RequestContext, call_next: Next, plan: Plan, deadline: float
    ) -> tuple[Outcome | None, GatewayError | None, Unusable | None]:
        """One pass over the candidates: an outcome, or the last failure, or why none was tried."""
        loop = asyncio.get_running_loop()
        failure: GatewayError | None = None
        passed_over: Unusable | None = None
        for deployment in plan.order:
            if failure is not None and not _another_may_answer(failure):
                break
            left = deadline - loop.time()
            if left <= 0:
                failure = _deadline_passed(self.deadline_s)
                break
            slot = await self._slot(deployment)
            if not isinstance(slot, Slot):
                if passed_over is None or _HOPE[slot] > _HOPE[passed_over]:
                    passed_over = slot
                continue
            attempt = Attempt(deployment)
            ctx.attempts.append(attempt)
            started = time.perf_counter()
            try:
                if left < deployment.timeout_s:  # else the attempt's own timeout comes first
                    async with asyncio.timeout(left):
                        outcome = await call_next(ctx)
                else:
                    outcome = await call_next(ctx)
            except TimeoutError:
                failure = _deadline_passed(self.deadline_s)
            except GatewayError as error:
                failure = error
            else:
                attempt.status, attempt.latency_ms = 200, _since(started)
                await self.router.remember(plan, deployment)
                if isinstance(outcome, EventStream):
                    return _tracked(outcome, slot, started), None, None
                await slot.finish(True, attempt.latency_ms)
                return outcome, None, None
            attempt.status, attempt.error_code = failure.status, failure.code
            attempt.latency_ms = _since(started)
            # Only a failure the model may be blamed for counts against it (a caller's 400
            # does not); the request's own deadline passing is not the model's failure either.
            await slot.finish(not _another_may_answer(failure), attempt.latency_ms)
        return None, failure, passed_over

    async def _slot(self, deployment: Deployment) -> Slot | Unusable:
        """A slot on ``deployment``, or why it cannot be tried now."""
        reason = await self.router.unusable(deployment)
        if reason is not None:
            return reason
        # Taken only now: the breaker may have admitted a trial call while others took
        # the last slot, so the limit is checked again, with nothing awaited in between.
        slot = self.tracker.try_start(deployment.key, deployment.max_concurrent)
        return slot if slot is not None else "busy"


def _tracked(stream: EventStream, slot: Slot, started: float) -> EventStream:
    """The stream, with its model's slot released and its outcome counted when it ends."""
    ended = False

    async def events() -> AsyncGenerator[StreamEvent, None]:
        nonlocal ended
        try:
            async for event in stream:
                ended = ended or isinstance(event, StreamEnd)
                yield event
        finally:
            await stream.aclose()
            await slot.finish(ended, _since(started))

    def closed() -> None:  # the consumer closed it without reading it through
        slot.finish_soon(ended, _since(started))

    return EventStream(stream.start, events(), on_close=closed)


#: When candidates were passed over for different reasons, the 503 names the one most
#: likely to clear soon: a busy model frees up in seconds, an open circuit in a minute.
_HOPE: dict[Unusable, int] = {"disabled": 0, "down": 1, "open": 2, "busy": 3}


def _nothing_usable(requested: str, reason: Unusable | None) -> GatewayError:
    if reason == "busy":
        return AllModelsBusy(f"every model that can serve {requested!r} is at its capacity")
    if reason == "open":
        return AllCircuitsOpen(
            f"every model that can serve {requested!r} is failing; its circuit is open"
        )
    if reason == "down":
        return AllModelsDown(f"every model that can serve {requested!r} is down")
    # Switched off: a setting it needs is missing.
    return ModelUnavailable(f"the model {requested!r} is not available right now")


def _deadline_passed(deadline_s: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"no model answered within the request's deadline of {deadline_s:g} s",
        retryable=False,
    )


def _another_may_answer(error: GatewayError) -> bool:
    return isinstance(error, UpstreamError) and error.retryable


def _the_models_fault(error: GatewayError) -> bool:
    """A failure a cached answer may stand in for: the models', never the caller's own."""
    return _another_may_answer(error) or isinstance(error, UpstreamTimeout | ModelUnavailable)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
