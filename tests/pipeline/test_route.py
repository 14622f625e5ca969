"""Route walks the candidates: every try is an attempt, and only some failures hand over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from llm_gateway.auth import Credentials
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
)
from llm_gateway.config import Deployment
from llm_gateway.config.routing import StaleIfError
from llm_gateway.errors import (
    AllCircuitsOpen,
    AllModelsBusy,
    AllModelsDown,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    UpstreamStatusError,
    UpstreamTimeout,
)
from llm_gateway.pipeline.context import ChatCall, Outcome, RequestContext
from llm_gateway.pipeline.route import Route
from llm_gateway.routing import Resolution, Router, StaleCache
from llm_gateway.settings import RoutingSettings
from llm_gateway.state import MemoryStore
from tests.pipeline.deployments import deployment


def _route() -> Route:
    return Route(Router(), RoutingSettings())


async def _no_body() -> bytes:
    return b""


def _context(*candidates: Deployment) -> RequestContext:
    call = ChatCall(lambda body: ChatRequest(model="m", messages=[]))
    call.request = ChatRequest(model="m", messages=[])
    call.resolution = Resolution("m", candidates)
    return RequestContext(
        endpoint="openai", credentials=Credentials(), read_body=_no_body, payload=call
    )


def _provider(failures: dict[str, GatewayError]) -> tuple[list[str], object]:
    tried: list[str] = []

    async def call(ctx: RequestContext) -> Outcome:
        assert ctx.deployment is not None
        tried.append(ctx.deployment.name)
        if ctx.deployment.name in failures:
            raise failures[ctx.deployment.name]
        return ChatResponse(model=ctx.deployment.name, text="ok")

    return tried, call


async def test_one_candidate_is_one_attempt() -> None:
    ctx = _context(deployment("a"))
    tried, call = _provider({})
    outcome = await _route()(ctx, call)  # type: ignore[arg-type]
    assert isinstance(outcome, ChatResponse)
    assert tried == ["a"]
    assert [(a.deployment.name, a.status) for a in ctx.attempts] == [("a", 200)]
    assert ctx.attempts[0].latency_ms is not None


async def test_a_switched_off_candidate_is_passed_over() -> None:
    ctx = _context(deployment("off", disabled_reason="no key"), deployment("b"))
    tried, call = _provider({})
    await _route()(ctx, call)  # type: ignore[arg-type]
    assert tried == ["b"]
    assert ctx.deployment is not None
    assert ctx.deployment.name == "b"


async def test_no_usable_candidate_is_unavailable() -> None:
    ctx = _context(deployment("off", disabled_reason="no key"))
    _, call = _provider({})
    with pytest.raises(ModelUnavailable):
        await _route()(ctx, call)  # type: ignore[arg-type]
    assert ctx.attempts == []


@pytest.mark.parametrize(
    "failure", [UpstreamTimeout("slow"), UpstreamStatusError("down", upstream_status=503)]
)
async def test_an_upstream_failure_hands_over_to_the_next(failure: GatewayError) -> None:
    ctx = _context(deployment("a"), deployment("b"))
    tried, call = _provider({"a": failure})
    outcome = await _route()(ctx, call)  # type: ignore[arg-type]
    assert isinstance(outcome, ChatResponse)
    assert outcome.model == "b"
    assert tried == ["a", "b"]
    assert [(a.deployment.name, a.error_code) for a in ctx.attempts] == [
        ("a", failure.code),
        ("b", None),
    ]


@pytest.mark.parametrize(
    "failure",
    [
        InvalidRequest("bad"),
        UpstreamStatusError("rejected", status=400, upstream_status=400, retryable=False),
    ],
)
async def test_a_failure_another_would_share_is_not_retried_elsewhere(
    failure: GatewayError,
) -> None:
    ctx = _context(deployment("a"), deployment("b"))
    tried, call = _provider({"a": failure})
    with pytest.raises(type(failure)):
        await _route()(ctx, call)  # type: ignore[arg-type]
    assert tried == ["a"]
    assert [(a.status, a.error_code) for a in ctx.attempts] == [(400, failure.code)]


async def test_the_last_failure_is_the_answer() -> None:
    ctx = _context(deployment("a"), deployment("b"))
    tried, call = _provider({"a": UpstreamTimeout("slow"), "b": UpstreamTimeout("slower")})
    with pytest.raises(UpstreamTimeout, match="slower"):
        await _route()(ctx, call)  # type: ignore[arg-type]
    assert tried == ["a", "b"]


# --- passing over, the deadline, and slots --------------------------------------------


class Marked:
    """Health and breaker views that say what a test tells them."""

    def __init__(self, down: set[str] = frozenset(), open_: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.down, self.open = down, open_
        self.admitted: list[str] = []

    def is_up(self, name: str) -> bool:
        return name not in self.down

    async def admit(self, name: str) -> bool:
        self.admitted.append(name)
        return name not in self.open


@pytest.mark.parametrize(
    ("down", "open_", "error"),
    [
        ({"a", "b"}, set(), AllModelsDown),
        (set(), {"a", "b"}, AllCircuitsOpen),
        ({"a"}, {"b"}, AllCircuitsOpen),  # the reason likeliest to clear soon
    ],
)
async def test_nothing_usable_is_a_503_that_says_why(
    down: set[str], open_: set[str], error: type[GatewayError]
) -> None:
    marks = Marked(down, open_)
    route = Route(Router(health=marks, breaker=marks), RoutingSettings())
    ctx = _context(deployment("a"), deployment("b"))
    tried, call = _provider({})
    with pytest.raises(error) as raised:
        await route(ctx, call)  # type: ignore[arg-type]
    assert raised.value.status == 503
    assert tried == []
    assert ctx.attempts == []
    assert not set(marks.admitted) & down  # a down model's breaker spends no trial call on it


async def test_a_model_down_or_open_is_passed_over_for_the_next() -> None:
    marks = Marked({"a"}, {"b"})
    route = Route(Router(health=marks, breaker=marks), RoutingSettings())
    ctx = _context(deployment("a"), deployment("b"), deployment("c"))
    tried, call = _provider({})
    await route(ctx, call)  # type: ignore[arg-type]
    assert tried == ["c"]


async def test_a_full_model_is_passed_over_and_every_full_model_waits_then_503() -> None:
    router = Router()
    held = [router.tracker.try_start("a", 1), router.tracker.try_start("b", 1)]
    ctx = _context(deployment("a", max_concurrent=1), deployment("b", max_concurrent=1))
    tried, call = _provider({})
    route = Route(router, RoutingSettings(busy_wait_ms=1))
    with pytest.raises(AllModelsBusy):
        await route(ctx, call)  # type: ignore[arg-type]
    assert tried == []
    assert held[1] is not None
    await held[1].finish(True, 1.0)  # b frees up
    ctx = _context(deployment("a", max_concurrent=1), deployment("b", max_concurrent=1))
    await route(ctx, call)  # type: ignore[arg-type]
    assert tried == ["b"]
    assert (router.tracker.in_flight("a"), router.tracker.in_flight("b")) == (1, 0)


async def test_a_request_waiting_for_a_full_model_takes_the_slot_that_frees_up() -> None:
    router = Router()
    held = router.tracker.try_start("a", 1)
    assert held is not None
    ctx = _context(deployment("a", max_concurrent=1))
    tried, call = _provider({})
    waiting = asyncio.create_task(
        Route(router, RoutingSettings(busy_wait_ms=60_000))(ctx, call)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    assert not waiting.done()
    await held.finish(True, 1.0)
    outcome = await waiting
    assert isinstance(outcome, ChatResponse)
    assert tried == ["a"]


async def test_the_deadline_ends_the_request_without_trying_the_rest() -> None:
    tried: list[str] = []

    async def slow(ctx: RequestContext) -> Outcome:
        assert ctx.deployment is not None
        tried.append(ctx.deployment.name)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    route = Route(Router(), RoutingSettings(deadline_ms=20))
    ctx = _context(deployment("a"), deployment("b"))
    with pytest.raises(UpstreamTimeout, match="deadline") as raised:
        await route(ctx, slow)
    assert raised.value.retryable is False
    assert tried == ["a"]
    assert [(a.status, a.error_code) for a in ctx.attempts] == [(504, "upstream_timeout")]


async def test_a_streams_model_stays_busy_until_the_stream_ends() -> None:
    router = Router()

    async def events() -> AsyncGenerator[StreamEvent, None]:
        yield TextDelta("hi")
        yield StreamEnd("stop")

    async def stream(ctx: RequestContext) -> Outcome:
        return EventStream(StreamStart(model="a"), events())

    outcome = await Route(router, RoutingSettings())(_context(deployment("a")), stream)
    assert isinstance(outcome, EventStream)
    assert router.tracker.in_flight("a") == 1
    assert [type(e) for e in [e async for e in outcome]] == [TextDelta, StreamEnd]
    assert router.tracker.in_flight("a") == 0


async def test_a_stream_closed_unread_frees_its_model() -> None:
    router = Router()

    async def events() -> AsyncGenerator[StreamEvent, None]:
        yield StreamEnd("stop")

    async def stream(ctx: RequestContext) -> Outcome:
        return EventStream(StreamStart(model="a"), events())

    outcome = await Route(router, RoutingSettings())(_context(deployment("a")), stream)
    assert isinstance(outcome, EventStream)
    await outcome.aclose()
    assert router.tracker.in_flight("a") == 0


# --- stale-if-error --------------------------------------------------------------------


def _cached_route() -> tuple[Route, StaleCache]:
    cache = StaleCache(MemoryStore(), StaleIfError(enabled=True))
    return Route(Router(), RoutingSettings(), cache), cache


async def test_when_every_model_fails_the_last_good_answer_is_served_marked_stale() -> None:
    route, cache = _cached_route()
    _, works = _provider({})
    await route(_context(deployment("a")), works)  # type: ignore[arg-type]
    await cache.settled()
    ctx = _context(deployment("a"), deployment("b"))
    _, fails = _provider({"a": UpstreamTimeout("slow"), "b": UpstreamTimeout("slower")})
    outcome = await route(ctx, fails)  # type: ignore[arg-type]
    assert isinstance(outcome, ChatResponse)
    assert (outcome.model, outcome.text) == ("a", "ok")
    assert (ctx.call.route, ctx.call.stale) == ("stale", True)
    assert [a.error_code for a in ctx.attempts] == ["upstream_timeout", "upstream_timeout"]


async def test_a_stream_gets_the_cached_answer_as_a_stream() -> None:
    route, cache = _cached_route()
    _, works = _provider({})
    await route(_context(deployment("a")), works)  # type: ignore[arg-type]
    await cache.settled()
    ctx = _context(deployment("a"))
    assert ctx.chat is not None
    ctx.chat.stream = True  # not part of the key: the same request, delivered otherwise
    _, fails = _provider({"a": UpstreamStatusError("down", upstream_status=503)})
    outcome = await route(ctx, fails)  # type: ignore[arg-type]
    assert isinstance(outcome, EventStream)
    events = [e async for e in outcome]
    assert [type(e) for e in events] == [TextDelta, StreamEnd]


async def test_a_failure_of_the_callers_own_is_never_answered_from_the_cache() -> None:
    route, cache = _cached_route()
    _, works = _provider({})
    await route(_context(deployment("a")), works)  # type: ignore[arg-type]
    await cache.settled()
    rejected = UpstreamStatusError("rejected", status=400, upstream_status=400, retryable=False)
    _, fails = _provider({"a": rejected})
    with pytest.raises(UpstreamStatusError):
        await route(_context(deployment("a")), fails)  # type: ignore[arg-type]


async def test_without_a_cached_answer_the_failure_stands() -> None:
    route, _ = _cached_route()
    _, fails = _provider({"a": UpstreamTimeout("slow")})
    with pytest.raises(UpstreamTimeout):
        await route(_context(deployment("a")), fails)  # type: ignore[arg-type]
