"""One attempt at a provider (``providers.call``) over a fake transport."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from llm_gateway import providers
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Usage,
)
from llm_gateway.config import Deployment, Provider
from llm_gateway.errors import (
    UpstreamError,
    UpstreamMalformedResponse,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamStreamInterrupted,
    UpstreamTimeout,
)
from llm_gateway.providers import call
from llm_gateway.transport import UpstreamRequest

SECRET = "sk-live-LEAKED-KEY and the user's prompt: my SSN is 078-05-1120"


class FakeResponse:
    def __init__(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        lines: list[bytes] | None = None,
        delay_s: float = 0.0,
        read_error: Exception | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = CIMultiDictProxy(CIMultiDict(headers or {}))
        self.body = body
        self._lines = lines or []
        self.delay_s = delay_s  # before the body (read) or the first line (lines)
        self.read_error = read_error
        self.read_calls = 0
        self.close_calls = 0

    async def read(self) -> bytes:
        self.read_calls += 1
        await asyncio.sleep(self.delay_s)
        if self.read_error is not None:
            raise self.read_error
        return self.body

    async def lines(self) -> AsyncIterator[bytes]:
        await asyncio.sleep(self.delay_s)
        for line in self._lines:
            yield line

    def close(self) -> None:
        self.close_calls += 1


class FakeTransport:
    def __init__(self, response: FakeResponse, delay_s: float = 0.0) -> None:
        self.response = response
        self.delay_s = delay_s
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> FakeResponse:
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        return self.response

    async def close(self) -> None:
        pass


def deployment(provider: Provider = Provider.OPENAI, timeout_s: float = 5.0) -> Deployment:
    return Deployment(
        name="dep",
        provider=provider,
        base_url="http://upstream.test/v1",
        upstream_model="model-x",
        api_key="key",
        timeout_s=timeout_s,
        max_concurrent=4,
        weight=1,
        default_max_tokens=100,
        price=None,
    )


def chat(stream: bool = False) -> ChatRequest:
    return ChatRequest(
        model="m", messages=[Message(role="user", content=[TextPart("hi")])], stream=stream
    )


def openai_stream(*texts: str) -> list[bytes]:
    out: list[bytes] = []
    for text in texts:
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        out += [b"data: " + json.dumps(chunk).encode(), b""]
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    return [*out, b"data: " + json.dumps(end).encode(), b"",
            b"data: " + json.dumps(usage).encode(), b"", b"data: [DONE]", b""]  # fmt: skip


OPENAI_ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "model-x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()  # fmt: skip


# --- success -----------------------------------------------------------------------------------


async def test_json_answer() -> None:
    transport = FakeTransport(FakeResponse(200, body=OPENAI_ANSWER))
    outcome = await call(transport, deployment(), chat())
    assert isinstance(outcome, ChatResponse)
    assert outcome.text == "Hello"
    assert outcome.usage == Usage(5, 1)
    [request] = transport.requests
    assert request.url == "http://upstream.test/v1/chat/completions"
    assert json.loads(request.body)["model"] == "model-x"


async def test_stream_is_primed_and_closes_the_response() -> None:
    response = FakeResponse(200, lines=openai_stream("Hel", "lo"))
    outcome = await call(FakeTransport(response), deployment(), chat(stream=True))
    assert isinstance(outcome, EventStream)
    assert outcome.start == StreamStart(model="dep")
    assert response.close_calls == 0
    events = [e async for e in outcome]
    assert events == [TextDelta("Hel"), TextDelta("lo"), StreamEnd("stop", Usage(3, 2))]
    await outcome.aclose()
    assert response.close_calls >= 1


async def test_stream_closed_without_iterating_releases_the_response() -> None:
    response = FakeResponse(200, lines=openai_stream("a"))
    outcome = await call(FakeTransport(response), deployment(), chat(stream=True))
    assert isinstance(outcome, EventStream)
    await outcome.aclose()
    assert response.close_calls >= 1


# --- status classification ------------------------------------------------------------------


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("status", "cls", "code", "gateway_status", "retryable"),
    [
        (429, UpstreamRateLimited, "upstream_rate_limited", 429, True),
        (408, UpstreamTimeout, "upstream_timeout", 504, True),
        (504, UpstreamTimeout, "upstream_timeout", 504, True),
        (503, UpstreamStatusError, "upstream_overloaded", 503, True),
        (529, UpstreamStatusError, "upstream_overloaded", 503, True),
        (401, UpstreamStatusError, "upstream_auth_failed", 502, True),
        (403, UpstreamStatusError, "upstream_auth_failed", 502, True),
        (400, UpstreamStatusError, "upstream_rejected_request", 400, False),
        (413, UpstreamStatusError, "upstream_rejected_request", 400, False),
        (422, UpstreamStatusError, "upstream_rejected_request", 400, False),
        (500, UpstreamStatusError, "upstream_error", 502, True),
        (502, UpstreamStatusError, "upstream_error", 502, True),
        (404, UpstreamStatusError, "upstream_error", 502, True),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_classification(
    status: int,
    cls: type[UpstreamError],
    code: str,
    gateway_status: int,
    retryable: bool,
    stream: bool,
) -> None:
    response = FakeResponse(status, body=json.dumps({"error": {"message": SECRET}}).encode())
    with pytest.raises(UpstreamError) as info:
        await call(FakeTransport(response), deployment(), chat(stream=stream))
    error = info.value
    assert type(error) is cls
    assert error.code == code
    assert error.status == gateway_status
    assert error.upstream_status == status
    assert error.retryable is retryable
    # The provider's body may echo the prompt or a key: it must never reach the message.
    assert str(status) in error.message
    for leaked in ("LEAKED", "078-05-1120", "SSN"):
        assert leaked not in error.message
        assert leaked not in str(error)
    assert response.read_calls == 1  # drained, so that the connection can be reused


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
async def test_rate_limit_retry_after(headers: dict[str, str], expected: float | None) -> None:
    with pytest.raises(UpstreamRateLimited) as info:
        await call(FakeTransport(FakeResponse(429, headers)), deployment(), chat())
    assert info.value.retry_after == expected


async def test_rate_limit_retry_after_http_date() -> None:
    response = FakeResponse(429, {"retry-after": _http_date(30)})
    with pytest.raises(UpstreamRateLimited) as info:
        await call(FakeTransport(response), deployment(), chat())
    assert info.value.retry_after is not None
    assert 27 <= info.value.retry_after <= 31


async def test_rate_limit_retry_after_date_in_the_past() -> None:
    response = FakeResponse(429, {"retry-after": _http_date(-60)})
    with pytest.raises(UpstreamRateLimited) as info:
        await call(FakeTransport(response), deployment(), chat())
    assert info.value.retry_after == 0.0


async def test_overloaded_carries_retry_after() -> None:
    with pytest.raises(UpstreamStatusError) as info:
        await call(FakeTransport(FakeResponse(529, {"retry-after": "4"})), deployment(), chat())
    assert info.value.code == "upstream_overloaded"
    assert info.value.retry_after == 4.0


async def test_error_body_that_fails_to_drain_still_classifies_and_closes() -> None:
    response = FakeResponse(503, read_error=UpstreamStreamInterrupted("cut"))
    with pytest.raises(UpstreamStatusError) as info:
        await call(FakeTransport(response), deployment(), chat())
    assert info.value.code == "upstream_overloaded"
    assert response.close_calls == 1


# --- timeouts ------------------------------------------------------------------------------------


async def test_timeout_waiting_for_headers() -> None:
    transport = FakeTransport(FakeResponse(200, body=OPENAI_ANSWER), delay_s=5)
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout) as info:
        await call(transport, deployment(timeout_s=0.05), chat())
    assert time.perf_counter() - started < 1
    assert info.value.status == 504
    assert info.value.retryable is True


async def test_timeout_waiting_for_the_body() -> None:
    response = FakeResponse(200, body=OPENAI_ANSWER, delay_s=5)
    with pytest.raises(UpstreamTimeout):
        await call(FakeTransport(response), deployment(timeout_s=0.05), chat())


async def test_timeout_waiting_for_the_first_stream_event_closes_the_response() -> None:
    response = FakeResponse(200, lines=openai_stream("late"), delay_s=5)
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout):
        await call(FakeTransport(response), deployment(timeout_s=0.05), chat(stream=True))
    assert time.perf_counter() - started < 1
    assert response.close_calls >= 1


async def test_timeout_applies_only_until_the_stream_has_started() -> None:
    class SlowAfterStart(FakeResponse):
        async def lines(self) -> AsyncIterator[bytes]:
            lines = openai_stream("a", "b")
            yield lines[0]
            yield lines[1]
            await asyncio.sleep(0.15)  # longer than timeout_s, but after priming
            for line in lines[2:]:
                yield line

    response = SlowAfterStart(200)
    outcome = await call(FakeTransport(response), deployment(timeout_s=0.05), chat(stream=True))
    assert isinstance(outcome, EventStream)
    events = [e async for e in outcome]
    await outcome.aclose()
    assert events[-1] == StreamEnd("stop", Usage(3, 2))


# --- streams that fail before starting --------------------------------------------------------


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC, Provider.OLLAMA])
async def test_empty_stream_is_malformed(provider: Provider) -> None:
    response = FakeResponse(200, lines=[])
    with pytest.raises(UpstreamMalformedResponse):
        await call(FakeTransport(response), deployment(provider), chat(stream=True))
    assert response.close_calls >= 1


async def test_adapter_stream_with_no_events_is_malformed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Silent:
        def build_request(self, dep: Deployment, request: ChatRequest) -> UpstreamRequest:
            return UpstreamRequest("http://x", {}, b"{}", dep.name, 1, 1.0)

        async def parse_stream(
            self, dep: Deployment, lines: AsyncIterator[bytes]
        ) -> AsyncGenerator[StreamEvent, None]:
            async for _ in lines:
                pass
            return
            yield  # pragma: no cover

    monkeypatch.setitem(providers.ADAPTERS, Provider.OPENAI, Silent())
    response = FakeResponse(200, lines=[b"ignored"])
    with pytest.raises(UpstreamMalformedResponse) as info:
        await call(FakeTransport(response), deployment(), chat(stream=True))
    assert info.value.message == "the provider's stream was empty"
    assert response.close_calls >= 1


def _anthropic_sse(*events: dict[str, Any]) -> list[bytes]:
    out: list[bytes] = []
    for event in events:
        out += [f"event: {event['type']}".encode(), f"data: {json.dumps(event)}".encode(), b""]
    return out


@pytest.mark.parametrize(
    ("lines", "cls", "code"),
    [
        (
            _anthropic_sse({"type": "error", "error": {"type": "overloaded_error",
                                                       "message": SECRET}}),
            UpstreamStatusError,
            "upstream_overloaded",
        ),
        ([b"data: {not json", b""], UpstreamMalformedResponse, "upstream_malformed_response"),
        (
            # content before message_start: the stream did not start properly
            _anthropic_sse({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": "hi"}}),
            UpstreamMalformedResponse,
            "upstream_malformed_response",
        ),
        (
            _anthropic_sse({"type": "ping"}),  # then EOF, before message_start
            UpstreamMalformedResponse,
            "upstream_malformed_response",
        ),
    ],
)  # fmt: skip
async def test_priming_failure_closes_the_response(
    lines: list[bytes], cls: type[UpstreamError], code: str
) -> None:
    response = FakeResponse(200, lines=lines)
    with pytest.raises(UpstreamError) as info:
        await call(FakeTransport(response), deployment(Provider.ANTHROPIC), chat(stream=True))
    assert type(info.value) is cls
    assert info.value.code == code
    assert "LEAKED" not in info.value.message
    assert response.close_calls >= 1


async def test_priming_failure_closes_the_adapter_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[bool] = []

    class Failing:
        def build_request(self, dep: Deployment, request: ChatRequest) -> UpstreamRequest:
            return UpstreamRequest("http://x", {}, b"{}", dep.name, 1, 1.0)

        async def parse_stream(
            self, dep: Deployment, lines: AsyncIterator[bytes]
        ) -> AsyncGenerator[StreamEvent, None]:
            try:
                yield TextDelta("not a start")
            finally:
                closed.append(True)

    monkeypatch.setitem(providers.ADAPTERS, Provider.OPENAI, Failing())
    response = FakeResponse(200)
    with pytest.raises(UpstreamMalformedResponse):
        await call(FakeTransport(response), deployment(), chat(stream=True))
    assert closed == [True]
    assert response.close_calls >= 1
