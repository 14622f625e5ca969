"""What goes wrong between the SDK and the gateway: never a raw httpx or JSON exception.

A fake server (``conftest.FakeServer``) plays a proxy's HTML page, a stream cut
short, a body of the wrong shape, error bodies of every format, and slowness.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from llm_gateway_sdk import (
    AsyncGateway,
    BudgetExceeded,
    ChatChunk,
    ConfirmationNotFound,
    ConfirmationRefused,
    Gateway,
    GatewayConnectionError,
    GatewayError,
    GatewayTimeout,
    GroundingFailed,
    InternalError,
    ModelNotFound,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
)
from tests.e2e.conftest import free_port
from tests.sdk.conftest import Answer, FakeServer

Fake = Callable[[Callable[[str, str], Answer]], FakeServer]
HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
HI = [{"role": "user", "content": "hi"}]


def always(status: int, body: bytes, headers: dict[str, str] | None = None,
           drop: bool = False) -> Callable[[str, str], Answer]:  # fmt: skip
    return lambda method, path: (status, headers or {"content-type": "text/html"}, [body], drop)


def error_json(status: int, error: dict[str, Any], **headers: str) -> Callable[[str, str], Answer]:
    body = json.dumps({"error": error}).encode()
    return always(status, body, {"content-type": "application/json", **headers})


def test_an_html_page_from_a_proxy_is_a_protocol_error(fake: Fake) -> None:
    server = fake(always(502, HTML))
    with Gateway(server.url, "k", max_retries=3) as gateway, pytest.raises(ProtocolError) as e:
        gateway.chat("m", HI)
    assert e.value.status == 502
    assert "not the gateway's JSON" in e.value.message
    assert len(server.seen) == 1  # a 502 is not retried


def test_a_200_that_is_not_json_or_not_the_right_shape_is_a_protocol_error(fake: Fake) -> None:
    with Gateway(fake(always(200, HTML)).url, "k") as gateway, pytest.raises(ProtocolError):
        gateway.chat("m", HI)
    shaped = fake(always(200, b'{"unexpected": true}', {"content-type": "application/json"}))
    with Gateway(shaped.url, "k") as gateway:
        with pytest.raises(ProtocolError):
            gateway.chat("m", HI)
        with pytest.raises(ProtocolError):
            gateway.models()
        with pytest.raises(ProtocolError):
            gateway.limits()


def test_a_proxys_503_page_is_retried_then_service_unavailable(fake: Fake) -> None:
    server = fake(always(503, b"<html>maintenance</html>", {"content-type": "text/html",
                                                            "retry-after": "0"}))  # fmt: skip
    gateway = Gateway(server.url, "k", max_retries=2)
    with gateway, pytest.raises(ServiceUnavailable) as e:
        gateway.chat("m", HI)
    assert e.value.status == 503
    assert len(server.seen) == 3


def test_a_closed_port_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Gateway(url, "k", max_retries=1) as gateway, pytest.raises(GatewayConnectionError) as e:
        gateway.chat("m", HI)
    assert url in e.value.message
    assert e.value.status is None

    async def main() -> None:
        async with AsyncGateway(url, "k", max_retries=0) as gateway:
            await gateway.models()

    with pytest.raises(GatewayConnectionError):
        asyncio.run(main())


def test_a_url_that_is_not_one_is_a_connection_error() -> None:
    with Gateway("not a url", "k") as gateway, pytest.raises(GatewayConnectionError):
        gateway.models()


def test_a_slow_gateway_is_a_timeout(fake: Fake) -> None:
    def slow(method: str, path: str) -> Answer:
        time.sleep(1.0)
        return 200, {"content-type": "application/json"}, [b"{}"], False

    server = fake(slow)
    gateway = Gateway(server.url, "k", timeout=0.2, max_retries=0)
    with gateway, pytest.raises(GatewayTimeout):
        gateway.chat("m", HI)


def _cut_stream(method: str, path: str) -> Answer:
    events = b'event: delta\ndata: {"text": "Hel"}\n\nevent: delta\ndata: {"text": "lo"}\n\n'
    return 200, {"content-type": "text/event-stream", "x-request-id": "r1"}, [events], True


def _unfinished_stream(method: str, path: str) -> Answer:
    events = b'event: delta\ndata: {"text": "Hel"}\n\n'
    return 200, {"content-type": "text/event-stream"}, [events], False


@pytest.mark.parametrize("answer", [_cut_stream, _unfinished_stream], ids=["cut", "no-done"])
def test_a_cut_stream_is_a_protocol_error(fake: Fake, answer: Callable[[str, str], Answer]) -> None:
    server = fake(answer)
    with Gateway(server.url, "k") as gateway:
        stream = gateway.chat("m", HI, stream=True)
        texts: list[str] = []

        def read() -> None:
            for item in stream:
                assert isinstance(item, ChatChunk)
                texts.append(item.text)

        with pytest.raises(ProtocolError) as e:
            read()
    assert texts[0] == "Hel"
    assert "done event" in e.value.message
    assert stream.summary is None

    async def main() -> list[str]:
        async with AsyncGateway(server.url, "k") as gateway:
            stream = await gateway.chat("m", HI, stream=True)
            return [item.text async for item in stream]

    with pytest.raises(ProtocolError):
        asyncio.run(main())


def test_a_stream_answered_with_json_is_a_protocol_error(fake: Fake) -> None:
    server = fake(always(200, b"{}", {"content-type": "application/json"}))
    with Gateway(server.url, "k") as gateway, pytest.raises(ProtocolError):
        gateway.chat("m", HI, stream=True)


def test_the_headers_sent(fake: Fake) -> None:
    body = json.dumps({"model": "m", "response": "ok", "metadata": {}}).encode()
    server = fake(always(200, body, {"content-type": "application/json"}))
    with Gateway(server.url, "secret-key") as gateway:
        answer = gateway.chat("m", HI, conversation_id="conv-1", environment="staging",
                              mfa_code="123456")  # fmt: skip
    assert (answer.content, answer.tokens_used, answer.request_id) == ("ok", 0, None)
    [(method, path, headers)] = server.seen
    lowered = {k.lower(): v for k, v in headers.items()}
    assert (method, path) == ("POST", "/api/v1/chat")
    assert lowered["authorization"] == "Bearer secret-key"
    assert lowered["x-conversation-id"] == "conv-1"
    assert lowered["x-environment"] == "staging"
    assert lowered["x-gateway-mfa"] == "123456"


# --- each stable code, its class --------------------------------------------------------

CASES: list[tuple[int, dict[str, Any], type[GatewayError]]] = [
    (422, {"type": "upstream", "code": "grounding_failed", "message": "m",
           "failed": ["contradictions"]}, GroundingFailed),
    (403, {"type": "permission", "code": "confirmation_refused", "message": "m"},
     ConfirmationRefused),
    (403, {"type": "permission", "code": "something_new", "message": "m"}, PermissionDenied),
    (404, {"type": "not_found", "code": "model_not_found", "message": "m"}, ModelNotFound),
    (503, {"type": "unavailable", "code": "all_models_down", "message": "m"}, ServiceUnavailable),
    (504, {"type": "timeout", "code": "upstream_timeout", "message": "m"}, UpstreamError),
    (500, {"type": "internal", "code": "internal_error", "message": "m"}, InternalError),
    (418, {"type": "invalid_request", "code": "teapot", "message": "m"}, GatewayError),
]  # fmt: skip


@pytest.mark.parametrize(("status", "error", "cls"), CASES, ids=[c[1]["code"] for c in CASES])
def test_each_code_is_its_class(
    fake: Fake, status: int, error: dict[str, Any], cls: type[GatewayError]
) -> None:
    server = fake(error_json(status, {**error, "request_id": "rid-1"}))
    with Gateway(server.url, "k", max_retries=0) as gateway, pytest.raises(cls) as e:
        gateway.models()
    assert (e.value.status, e.value.code, e.value.request_id) == (status, error["code"], "rid-1")
    if cls is GroundingFailed:
        assert isinstance(e.value, GroundingFailed)
        assert e.value.failed == ["contradictions"]


def test_a_budget_refusal_is_not_retried(fake: Fake) -> None:
    server = fake(error_json(
        429, {"type": "rate_limit", "code": "token_budget_exceeded", "message": "m",
              "scope": "user"},
        **{"retry-after": "3", "x-should-retry": "false"},
    ))  # fmt: skip
    with Gateway(server.url, "k", max_retries=3) as gateway, pytest.raises(BudgetExceeded) as e:
        gateway.chat("m", HI)
    assert isinstance(e.value, RateLimited)
    assert (e.value.retry_after, e.value.scope) == (3.0, "user")
    assert len(server.seen) == 1


def test_a_429_is_retried_as_long_as_retry_after_ms_says(fake: Fake) -> None:
    calls: list[float] = []

    def answer(method: str, path: str) -> Answer:
        calls.append(time.monotonic())
        if len(calls) == 1:
            body = json.dumps({"error": {"code": "rate_limited", "message": "m"}}).encode()
            return 429, {"content-type": "application/json", "retry-after": "1",
                         "retry-after-ms": "300"}, [body], False  # fmt: skip
        return 200, {"content-type": "application/json"}, [b'{"enabled": false}'], False

    server = fake(answer)
    with Gateway(server.url, "k") as gateway:
        assert gateway.limits().enabled is False
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.3


def test_a_dropped_answer_to_a_read_is_retried_but_not_a_chats(fake: Fake) -> None:
    server = fake(always(200, b'{"enab', {"content-type": "application/json"}, drop=True))
    with Gateway(server.url, "k", max_retries=2) as gateway:
        with pytest.raises(GatewayError) as read:
            gateway.limits()
        assert len(server.seen) == 3
        with pytest.raises(GatewayError) as chat:
            gateway.chat("m", HI)
        assert len(server.seen) == 4  # the chat may have reached a model: not sent again
    for raised in (read.value, chat.value):
        assert isinstance(raised, ProtocolError | GatewayConnectionError)


def _stream(method: str, path: str) -> Answer:
    events = (b'event: delta\ndata: {"text": "a"}\n\n: a comment\n\nevent: delta\n'
              b'data: {"text": "b"}\n\nevent: done\ndata: {"model": "m", "metadata": '
              b'{"tokens_used": 3, "request_id": "rid"}}\n\n')  # fmt: skip
    return 200, {"content-type": "text/event-stream"}, [events], False


def test_a_stream_read_twice_or_after_close(fake: Fake) -> None:
    server = fake(_stream)
    with Gateway(server.url, "k") as gateway:
        stream = gateway.chat("m", HI, stream=True)
        assert stream.until_done().content == "ab"
        assert list(stream) == []  # finished: nothing more
        closed = gateway.chat("m", HI, stream=True)
        closed.close()
        with pytest.raises(ProtocolError):
            list(closed)


def test_the_async_client_retries_and_types_errors(fake: Fake) -> None:
    calls: list[str] = []

    def answer(method: str, path: str) -> Answer:
        calls.append(path)
        if path == "/api/v1/limits" and len(calls) == 1:
            return (
                503,
                {"content-type": "application/json", "retry-after": "0"},
                [b'{"error": {"code": "limits_unavailable", "message": "m"}}'],
                False,
            )
        if path == "/api/v1/limits":
            return 200, {"content-type": "application/json"}, [b'{"enabled": true}'], False
        if path == "/api/v1/chat":
            return _stream(method, path)
        body = b'{"error": {"type": "not_found", "code": "confirmation_not_found", "message": "m"}}'
        return 404, {"content-type": "application/json"}, [body], False  # fmt: skip

    server = fake(answer)

    async def main() -> tuple[bool, str]:
        async with AsyncGateway(server.url, "k") as gateway:
            limits = await gateway.limits()
            stream = await gateway.chat("m", HI, stream=True)
            summary = await stream.until_done()
            with pytest.raises(ConfirmationNotFound):
                await gateway.confirm("c/1", "confirm it")
            return limits.enabled, summary.content

    assert asyncio.run(main()) == (True, "ab")
    assert calls == ["/api/v1/limits", "/api/v1/limits", "/api/v1/chat",
                     "/api/v1/confirmations/c%2F1/confirm"]  # fmt: skip
