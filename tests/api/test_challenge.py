"""A pending confirmation (a challenge) as each front door renders it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.api.doors import CONFIRMATION_HEADER, DOORS, FrontDoor
from llm_gateway.pipeline.context import Challenge, Outcome, RequestContext
from llm_gateway.routing import Router

CONFIRMATION = {"id": "c-1", "action": "delete", "phrase": "confirm delete 7 instances"}
TEXT = "This deletes 7 instances. Type `confirm delete 7 instances` to go on."
BODIES: dict[str, dict[str, Any]] = {
    "openai": {"model": "m", "messages": [{"role": "user", "content": "go"}]},
    "anthropic": {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "go"}]},
    "native": {"model": "m", "messages": [{"role": "user", "content": "go"}]},
}


def _request(body: bytes) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http", "method": "POST", "path": "/", "headers": [
            (b"content-type", b"application/json"), (b"authorization", b"Bearer t"),
        ], "state": {"request_id": "req-1"}, "client": ("127.0.0.1", 1),
    }  # fmt: skip
    return Request(scope, receive)


async def _challenged(ctx: RequestContext) -> Outcome:
    ctx.call.request = ctx.call.parse(await ctx.read_body())
    return Challenge("c-1", TEXT, CONFIRMATION)


def _state() -> Any:
    http = SimpleNamespace(max_body_bytes=10_000, trusted_proxies=())
    settings = SimpleNamespace(http=http)
    routing = SimpleNamespace(router=Router())
    return SimpleNamespace(settings=settings, pipeline=_challenged, routing=routing)


async def _send_all(response: Any) -> tuple[dict[str, str], bytes]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await response({"type": "http"}, receive, send)
    start = messages[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return headers, b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_a_json_answer_carries_the_text_the_object_and_the_header(door: FrontDoor) -> None:
    response = await door.handle(_request(orjson.dumps(BODIES[door.name])), _state())
    assert isinstance(response, Response)
    assert response.headers[CONFIRMATION_HEADER] == "c-1"
    body = orjson.loads(response.body)
    place = body["metadata"] if door.name == "native" else body
    assert place["confirmation"] == CONFIRMATION
    assert TEXT in bytes(response.body).decode()


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_a_streamed_answer_speaks_the_text_with_the_header(door: FrontDoor) -> None:
    body = {**BODIES[door.name], "stream": True}
    response = await door.handle(_request(orjson.dumps(body)), _state())
    headers, sent = await _send_all(response)
    assert headers[CONFIRMATION_HEADER] == "c-1"
    assert headers["content-type"].startswith(door.stream_media_type)
    assert TEXT.split("`")[0].strip() in sent.decode()
