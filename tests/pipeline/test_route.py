"""Route walks the candidates: every try is an attempt, and only some failures hand over."""

from __future__ import annotations

import pytest

from llm_gateway.auth import Credentials
from llm_gateway.chat import ChatRequest, ChatResponse
from llm_gateway.config import Deployment
from llm_gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    UpstreamStatusError,
    UpstreamTimeout,
)
from llm_gateway.pipeline.context import ChatCall, Outcome, RequestContext
from llm_gateway.pipeline.route import Route
from llm_gateway.routing import Resolution, Router
from llm_gateway.settings import RoutingSettings
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
