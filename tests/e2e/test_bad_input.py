"""Bad input through every front door: the right status, the door's error shape, an audit row.

Each front door renders the same failures in its own wire format:

    openai     {"error": {"message", "type", "param", "code", "request_id"}}
    anthropic  {"type": "error", "error": {"type", "message", "code"}, "request_id"}
    native     {"error": {"type", "code", "message", "request_id"}}

Every case checks the status, that exact shape with the stable ``code``, that the
request id in the body is the ``x-request-id`` header, that nothing internal
(stack traces, module names, the provider's address or key, the prompt) leaks
into the body, and the audit row the refusal or failure left behind.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.pipeline.authorize import unknown_model
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import (
    PROVIDER_KEY,
    QUICK_TIMEOUT_S,
    Gateway,
    directive,
    start_gateway,
    stop_gateway,
)

SMALL_LIMIT = 4096  # MAX_BODY_BYTES of the second gateway
TIMEOUT_S = QUICK_TIMEOUT_S  # timeout_ms of every model of quick_timeout_gateway
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")

#: Error ``type`` each door uses for a kind of failure (llm_gateway.errors.ErrorKind).
ERROR_TYPES = {
    "openai": {
        "invalid_request": "invalid_request_error",
        "too_large": "invalid_request_error",
        "not_found": "invalid_request_error",
        "upstream": "api_error",
        "timeout": "timeout_error",
    },
    "anthropic": {
        "invalid_request": "invalid_request_error",
        "too_large": "request_too_large",
        "not_found": "not_found_error",
        "upstream": "api_error",
        "timeout": "timeout_error",
    },
    "native": {
        "invalid_request": "invalid_request",
        "too_large": "too_large",
        "not_found": "not_found",
        "upstream": "upstream",
        "timeout": "timeout",
    },
}

#: Text that must never reach a caller in an error body (lower case).
INTERNALS = (
    "traceback",
    'file "',
    ".py",
    "llm_gateway",
    "orjson",
    "aiohttp",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "exception",
    PROVIDER_KEY.lower(),
    # the upstream model ids behind the gateway's model names
    "gpt-4o-mini",
    "claude-sonnet-4-5",
    "llama3.2",
)


# --- the doors -------------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    name: str  # the audit row's endpoint
    path: str
    model: str  # the model this door's tests call (one provider adapter each)
    required: dict[str, Any] = field(default_factory=dict)  # fields the door always needs
    params: bool = False  # the error shape has a ``param``

    def body(self, content: Any = "hello", **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            **self.required,
        }
        body.update(fields)
        return body

    def error(self, body: Any) -> tuple[dict[str, Any], str]:
        """The error object and the request id of an error body, checking the exact shape."""
        assert isinstance(body, dict), body
        if self.name == "anthropic":
            assert set(body) == {"type", "error", "request_id"}, body
            assert body["type"] == "error"
            error = body["error"]
            assert set(error) == {"type", "message", "code"}, error
            return error, body["request_id"]
        assert set(body) == {"error"}, body
        error = body["error"]
        if self.name == "openai":
            assert set(error) == {"message", "type", "param", "code", "request_id"}, error
        else:
            assert set(error) == {"type", "code", "message", "request_id"}, error
        return error, error["request_id"]

    def stream_error(self, events: list[tuple[str, str]]) -> dict[str, Any]:
        """The in-band error that ends a failed stream, checking that it is the last event
        and that the door's normal terminal event is absent."""
        assert events, "the stream carried no events at all"
        name, data = events[-1]
        datas = [d for _, d in events]
        names = [n for n, _ in events]
        if self.name == "openai":
            assert "[DONE]" not in datas, "a failed stream must not end with [DONE]"
            assert name == "message"
        elif self.name == "anthropic":
            assert "message_stop" not in names
            assert "message_delta" not in names
            assert name == "error"
        else:
            assert "done" not in names
            assert name == "error"
        error: dict[str, Any] = json.loads(data)
        return error


OPENAI = Door("openai", "/v1/chat/completions", "gpt-emu", params=True)
ANTHROPIC = Door("anthropic", "/v1/messages", "claude-emu", required={"max_tokens": 64})
NATIVE = Door("native", "/api/v1/chat", "ollama-emu")
DOORS = (OPENAI, ANTHROPIC, NATIVE)
by_door = pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)


def marker() -> str:
    return f"m{uuid.uuid4().hex[:16]}"


def auth(gateway: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.token()}"}


def post(
    gateway: Gateway, door: Door, body: Any = None, *, content: Any = None, **kw: Any
) -> httpx.Response:
    """POST to a door with a valid token: ``body`` as JSON, or ``content`` as raw bytes."""
    headers = {**auth(gateway), **kw.pop("headers", {})}
    with gateway.http() as http:
        if content is not None:
            headers.setdefault("content-type", "application/json")
            return http.post(door.path, content=content, headers=headers, **kw)
        return http.post(door.path, json=body, headers=headers, **kw)


def assert_no_internals(text: str, *extra: str) -> None:
    lowered = text.lower()
    for needle in (*INTERNALS, *(e.lower() for e in extra)):
        assert needle not in lowered, f"{needle!r} leaked into {text!r}"


@dataclass(frozen=True)
class ExpectedError:
    """The error a request must get: its HTTP status, its ``code``, the kind of error
    (a key of :data:`ERROR_TYPES`: the door's own ``type``) and, for a field the caller
    got wrong, the field's name."""

    status: int
    code: str
    kind: str
    param: str | None = None


def assert_error(
    gateway: Gateway,
    door: Door,
    response: httpx.Response,
    expected: ExpectedError,
    *,
    secret: tuple[str, ...] = (),
) -> AuditLog:
    """Check a refused or failed request end to end; return its audit row."""
    status, code, param = expected.status, expected.code, expected.param
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error, request_id = door.error(response.json())
    assert error["code"] == code, error
    assert error["type"] == ERROR_TYPES[door.name][expected.kind], error
    assert isinstance(error["message"], str)
    assert error["message"]
    header_id = response.headers["x-request-id"]
    assert REQUEST_ID.match(header_id)
    assert request_id == header_id
    if param is not None:
        if door.params:
            assert error["param"] == param, error
        else:  # the doors without a ``param`` name the field in the message
            assert param in error["message"], error
    assert_no_internals(response.text, *secret)
    row = gateway.audit_row(header_id)
    assert (row.status, row.error_code, row.endpoint) == (status, code, door.name)
    assert (row.user_id, row.auth_method) == ("alice", "jwt")
    assert row.tokens_used == 0
    assert row.cost_usd == 0
    return row


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event name, raw data) for each server-sent event; ``message`` when unnamed."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not any(line.startswith("data:") for line in lines):
            continue
        name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "message")
        data = "\n".join(ln[5:].removeprefix(" ") for ln in lines if ln.startswith("data:"))
        events.append((name, data))
    return events


# --- bodies that are not JSON objects --------------------------------------------

NOT_A_JSON_OBJECT = {
    "truncated": b'{"model": "gpt-emu", "messages": [',
    "trailing_garbage": b'{"model": "gpt-emu"} xyz',
    "single_quotes": b"{'model': 'gpt-emu'}",
    "empty": b"",
    "whitespace_only": b"   \n ",
    "array": b"[]",
    "string": b'"hello"',
    "number": b"42",
    "null": b"null",
    "nan": b'{"model": "gpt-emu", "temperature": NaN}',
    "lone_surrogate_escape": b'{"model": "gpt-emu", "messages": [{"role": "user", '
    b'"content": "\\ud800"}]}',
    "nested_too_deep": b'{"model": "gpt-emu", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}


@by_door
@pytest.mark.parametrize("case", list(NOT_A_JSON_OBJECT))
def test_body_that_is_not_a_json_object(gateway: Gateway, door: Door, case: str) -> None:
    response = post(gateway, door, content=NOT_A_JSON_OBJECT[case])
    row = assert_error(
        gateway, door, response, ExpectedError(400, "invalid_json", "invalid_request")
    )
    assert (row.model_requested, row.model, row.prompt_sha256) == (None, None, None)


@by_door
@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gpt-\xff", "messages": []}',
        b'{"model": "gpt-emu", "messages": [{"role": "user", "content": "caf\xc3"}]}',
        b'{"model": "gpt-emu", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        "{}".encode("utf-16"),
    ],
    ids=["bad_byte", "truncated_sequence", "encoded_surrogate", "utf16"],
)
def test_body_that_is_not_utf8(gateway: Gateway, door: Door, raw: bytes) -> None:
    response = post(gateway, door, content=raw)
    row = assert_error(
        gateway, door, response, ExpectedError(400, "invalid_utf8", "invalid_request")
    )
    assert row.model_requested is None


# --- fields with the wrong type or value -----------------------------------------


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.update(fields)


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.pop(name)


def _message(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["messages"][0].update(fields)


def _no_role(body: dict[str, Any]) -> None:
    body["messages"][0].pop("role")


#: id -> (change to a valid body, code, param): these apply to every door.
FIELD_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "model_missing": (_drop("model"), "missing_field", "model"),
    "model_null": (_set(model=None), "missing_field", "model"),
    "model_number": (_set(model=42), "invalid_field", "model"),
    "model_empty": (_set(model=""), "invalid_field", "model"),
    "model_array": (_set(model=["gpt-emu"]), "invalid_field", "model"),
    "messages_missing": (_drop("messages"), "missing_field", "messages"),
    "messages_string": (_set(messages="hello"), "invalid_field", "messages"),
    "messages_object": (_set(messages={"role": "user"}), "invalid_field", "messages"),
    "messages_empty": (_set(messages=[]), "empty_messages", "messages"),
    "message_string": (_set(messages=["hello"]), "invalid_field", "messages[0]"),
    "message_null": (_set(messages=[None]), "invalid_field", "messages[0]"),
    "content_number": (_message(content=42), "invalid_field", "messages[0].content"),
    "content_object": (_message(content={"text": "x"}), "invalid_field", "messages[0].content"),
    "content_bool": (_message(content=True), "invalid_field", "messages[0].content"),
    "role_unknown": (_message(role="wizard"), "invalid_role", "messages[0].role"),
    "role_number": (_message(role=1), "invalid_role", "messages[0].role"),
    "role_missing": (_no_role, "invalid_role", "messages[0].role"),
    "stream_string": (_set(stream="yes"), "invalid_field", "stream"),
    "temperature_string": (_set(temperature="hot"), "invalid_field", "temperature"),
    "temperature_too_high": (_set(temperature=5), "invalid_field", "temperature"),
    "temperature_negative": (_set(temperature=-1), "invalid_field", "temperature"),
    "max_tokens_string": (_set(max_tokens="ten"), "invalid_field", "max_tokens"),
    "max_tokens_float": (_set(max_tokens=1.5), "invalid_field", "max_tokens"),
    "max_tokens_zero": (_set(max_tokens=0), "invalid_field", "max_tokens"),
    "max_tokens_bool": (_set(max_tokens=True), "invalid_field", "max_tokens"),
}


@by_door
@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_invalid_field(gateway: Gateway, door: Door, case: str) -> None:
    change, code, param = FIELD_CASES[case]
    secret = marker()
    body = door.body(f"{secret} please answer")
    change(body)
    response = post(gateway, door, body)
    row = assert_error(
        gateway, door, response, ExpectedError(400, code, "invalid_request", param=param),
        secret=(secret,),
    )  # fmt: skip
    assert row.model_requested is None  # refused while parsing: no request to describe
    assert row.prompt_sha256 is None


#: door -> id -> (change, code, param): what only one door checks.
DOOR_CASES: dict[str, dict[str, tuple[Callable[[dict[str, Any]], None], str, str]]] = {
    "openai": {
        "n_2": (_set(n=2), "unsupported_parameter", "n"),
        "n_0": (_set(n=0), "invalid_field", "n"),
        "n_string": (_set(n="2"), "invalid_field", "n"),
        "content_part_audio": (
            _message(content=[{"type": "input_audio", "input_audio": {"data": "AAAA"}}]),
            "unsupported_content",
            "messages[0].content[0].type",
        ),
        "content_part_not_object": (
            _message(content=["hello"]),
            "invalid_field",
            "messages[0].content[0]",
        ),
        "user_content_null": (_message(content=None), "missing_field", "messages[0].content"),
        "tool_without_call_id": (
            _set(messages=[{"role": "tool", "content": "42"}]),
            "missing_field",
            "messages[0].tool_call_id",
        ),
        "stream_options_not_object": (
            _set(stream=True, stream_options="usage"),
            "invalid_field",
            "stream_options",
        ),
        "tools_not_array": (_set(tools={"name": "x"}), "invalid_field", "tools"),
        "top_p_too_high": (_set(top_p=1.5), "invalid_field", "top_p"),
        "stop_number": (_set(stop=7), "invalid_field", "stop"),
    },
    "anthropic": {
        "max_tokens_missing": (_drop("max_tokens"), "missing_field", "max_tokens"),
        "max_tokens_null": (_set(max_tokens=None), "missing_field", "max_tokens"),
        "role_system": (_message(role="system"), "invalid_role", "messages[0].role"),
        "block_document": (
            _message(content=[{"type": "document", "source": {"type": "text", "data": "x"}}]),
            "unsupported_content",
            "messages[0].content[0].type",
        ),
        "block_not_object": (_message(content=[42]), "invalid_field", "messages[0].content[0]"),
        "system_number": (_set(system=42), "invalid_field", "system"),
        "temperature_above_one": (_set(temperature=1.5), "invalid_field", "temperature"),
        "metadata_string": (_set(metadata="x"), "invalid_field", "metadata"),
    },
    "native": {
        "role_tool": (_message(role="tool"), "invalid_role", "messages[0].role"),
        "content_parts": (
            _message(content=[{"type": "text", "text": "hi"}]),
            "invalid_field",
            "messages[0].content",
        ),
        "content_null": (_message(content=None), "invalid_field", "messages[0].content"),
        "only_system": (
            _set(messages=[{"role": "system", "content": "be brief"}]),
            "empty_messages",
            "messages",
        ),
    },
}


@pytest.mark.parametrize(
    ("door", "case"),
    [(door, case) for door in DOORS for case in DOOR_CASES[door.name]],
    ids=[f"{door.name}-{case}" for door in DOORS for case in DOOR_CASES[door.name]],
)
def test_invalid_field_door_specific(gateway: Gateway, door: Door, case: str) -> None:
    change, code, param = DOOR_CASES[door.name][case]
    body = door.body()
    change(body)
    response = post(gateway, door, body)
    row = assert_error(
        gateway, door, response, ExpectedError(400, code, "invalid_request", param=param)
    )
    assert row.model_requested is None


@by_door
def test_invalid_field_in_a_streamed_request_is_a_json_error(gateway: Gateway, door: Door) -> None:
    response = post(gateway, door, door.body(42, stream=True))
    expected = ExpectedError(400, "invalid_field", "invalid_request", param="messages[0].content")
    assert_error(gateway, door, response, expected)


def test_openai_n_1_is_accepted(gateway: Gateway) -> None:
    """The counterpart of the n=2 refusal: n=1 is an ordinary request."""
    response = post(gateway, OPENAI, OPENAI.body("ping", n=1))
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 1


# --- unknown model ---------------------------------------------------------------


@by_door
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_unknown_model(gateway: Gateway, door: Door, stream: bool) -> None:
    """Refused before any stream starts: a plain JSON error, streamed request or not."""
    name = f"no-such-model-{marker()}"
    secret = marker()
    response = post(gateway, door, door.body(secret, model=name, stream=stream))
    expected = ExpectedError(404, "model_not_found", "not_found", param="model")
    row = assert_error(gateway, door, response, expected, secret=(secret,))
    # The caller's free text is kept only as its digest (it may carry anything, a key too).
    assert (row.model_requested, row.model, row.provider) == (unknown_model(name), None, None)
    assert row.model_requested is not None
    assert name not in row.model_requested
    assert row.stream is stream
    assert row.prompt_sha256 is not None  # the request was understood, so it is described


@by_door
def test_model_name_is_case_sensitive(gateway: Gateway, door: Door) -> None:
    response = post(gateway, door, door.body(model=door.model.upper()))
    assert_error(gateway, door, response, ExpectedError(404, "model_not_found", "not_found"))


# --- the body size limit ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A second gateway that accepts bodies of at most 4 KiB."""
    tmp: Path = tmp_path_factory.mktemp("small-gateway")
    gw = start_gateway(
        tmp,
        emulator.base_url,
        f"sqlite:///{tmp}/data/gateway.db",
        env={"MAX_BODY_BYTES": str(SMALL_LIMIT)},
    )
    try:
        yield gw
    finally:
        stop_gateway(gw)


def sized_body(door: Door, size: int) -> bytes:
    """A valid request body of exactly ``size`` bytes (the prompt pads it)."""
    empty = json.dumps(door.body("")).encode()
    padding = size - len(empty)
    assert padding > 0
    body = json.dumps(door.body("a" * padding)).encode()
    assert len(body) == size
    return body


@by_door
def test_body_over_the_limit_is_refused(small_gateway: Gateway, door: Door) -> None:
    response = post(small_gateway, door, content=sized_body(door, SMALL_LIMIT + 1))
    row = assert_error(
        small_gateway, door, response, ExpectedError(413, "body_too_large", "too_large")
    )
    assert str(SMALL_LIMIT) in response.text  # the caller learns the limit
    assert row.model_requested is None


@by_door
def test_body_at_the_limit_is_accepted(small_gateway: Gateway, door: Door) -> None:
    response = post(small_gateway, door, content=sized_body(door, SMALL_LIMIT))
    assert response.status_code == 200, response.text
    row = small_gateway.audit_row(response.headers["x-request-id"])
    assert (row.status, row.error_code, row.endpoint) == (200, None, door.name)


def _chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@by_door
def test_chunked_body_over_the_limit_is_refused(small_gateway: Gateway, door: Door) -> None:
    """Without a Content-Length the gateway counts what arrives and stops at the limit."""
    body = sized_body(door, 3 * SMALL_LIMIT)
    with small_gateway.http() as http:
        request = http.build_request(
            "POST", door.path, content=_chunks(body), headers=auth(small_gateway)
        )
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = http.send(request)
    assert_error(small_gateway, door, response, ExpectedError(413, "body_too_large", "too_large"))


@by_door
def test_chunked_body_within_the_limit_is_accepted(small_gateway: Gateway, door: Door) -> None:
    body = sized_body(door, SMALL_LIMIT - 10)
    with small_gateway.http() as http:
        request = http.build_request(
            "POST", door.path, content=_chunks(body, 700), headers=auth(small_gateway)
        )
        assert "content-length" not in request.headers
        response = http.send(request)
    assert response.status_code == 200, response.text


def test_default_limit_is_two_mib(gateway: Gateway) -> None:
    """The session gateway keeps the default MAX_BODY_BYTES of 2 MiB."""
    limit = 2 * 1024 * 1024
    response = post(gateway, OPENAI, content=sized_body(OPENAI, limit + 1))
    assert_error(gateway, OPENAI, response, ExpectedError(413, "body_too_large", "too_large"))
    assert str(limit) in response.text


def test_refused_oversized_body_does_not_poison_the_connection(small_gateway: Gateway) -> None:
    """After a 413 on a keep-alive connection, the next request on it is served normally."""
    with small_gateway.http() as http:
        headers = {**auth(small_gateway), "content-type": "application/json"}
        big = http.post(OPENAI.path, content=sized_body(OPENAI, 2 * SMALL_LIMIT), headers=headers)
        assert big.status_code == 413
        ok = http.post(OPENAI.path, json=OPENAI.body("ping"), headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["content"] == "Echo: ping"


# --- an upstream that hangs, or goes silent mid-stream ---------------------------

SLOW_CASES = ("hang", "hang_stream", "silent_mid_stream")


@pytest.fixture(scope="module")
def slow_answers(
    quick_timeout_gateway: Gateway,
) -> Iterator[dict[tuple[str, str], Future[tuple[httpx.Response, float]]]]:
    """Every slow request of this module, sent at once so the timeouts elapse together."""
    gateway = quick_timeout_gateway
    token = gateway.token()

    def send(door: Door, case: str) -> tuple[httpx.Response, float]:
        if case == "hang":
            body = door.body(directive("hi", hang=True))
        elif case == "hang_stream":
            body = door.body(directive("hi", hang=True), stream=True)
        else:  # one chunk, then silence far longer than the timeout
            prompt = directive("hi", chunks=["alpha ", "beta"], chunk_delay_ms=30_000)
            body = door.body(prompt, stream=True)
        started = time.monotonic()
        with httpx.Client(base_url=gateway.base_url, timeout=30) as http:
            response = http.post(door.path, json=body, headers={"authorization": f"Bearer {token}"})
        return response, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=len(DOORS) * len(SLOW_CASES)) as pool:
        yield {(d.name, case): pool.submit(send, d, case) for d in DOORS for case in SLOW_CASES}


@by_door
@pytest.mark.parametrize("case", ["hang", "hang_stream"])
def test_upstream_that_hangs_times_out(
    quick_timeout_gateway: Gateway,
    emulator: EmulatorServer,
    slow_answers: dict[tuple[str, str], Future[tuple[httpx.Response, float]]],
    door: Door,
    case: str,
) -> None:
    """504 upstream_timeout after the model's timeout_ms, streamed or not.

    The gateway's own timeout ended the wait: an answer at all (the client
    would have given up after 30 s with an exception), and a 504 that says so."""
    gateway = quick_timeout_gateway
    response, elapsed = slow_answers[door.name, case].result(timeout=60)
    row = assert_error(
        gateway, door, response, ExpectedError(504, "upstream_timeout", "timeout"),
        secret=(emulator.base_url.split("//")[1],),
    )  # fmt: skip
    assert elapsed >= TIMEOUT_S * 0.9, elapsed  # not before the timeout
    assert (row.model, row.stream) == (door.model, case == "hang_stream")
    assert row.latency_ms >= TIMEOUT_S * 0.9 * 1000


@by_door
def test_upstream_silent_mid_stream_ends_with_an_in_band_timeout(
    quick_timeout_gateway: Gateway,
    emulator: EmulatorServer,
    slow_answers: dict[tuple[str, str], Future[tuple[httpx.Response, float]]],
    door: Door,
) -> None:
    """The gateway's timeout ends the stream in band, before the provider's next chunk."""
    gateway = quick_timeout_gateway
    response, elapsed = slow_answers[door.name, "silent_mid_stream"].result(timeout=60)
    assert response.status_code == 200  # the stream had started
    assert "alpha" in response.text
    assert "beta" not in response.text  # cut during the silence, not after it
    assert elapsed >= TIMEOUT_S * 0.9, elapsed
    error, request_id = door.error(door.stream_error(sse_events(response.text)))
    assert error["code"] == "upstream_timeout"
    assert request_id == response.headers["x-request-id"]
    assert_no_internals(json.dumps(error), emulator.base_url.split("//")[1])
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.status, row.error_code, row.endpoint, row.stream) == (
        504,
        "upstream_timeout",
        door.name,
        True,
    )


# --- an upstream that dies -------------------------------------------------------


@by_door
@pytest.mark.parametrize("model", ["gpt-emu", "claude-emu", "ollama-emu"])
def test_upstream_dies_mid_stream(
    gateway: Gateway, emulator: EmulatorServer, door: Door, model: str
) -> None:
    """The stream ends with the door's in-band error event, never a silent cut."""
    chunks = ["alpha ", "beta ", "gamma ", "delta"]
    body = door.body(directive("hi", chunks=chunks, truncate_after=2), model=model, stream=True)
    response = post(gateway, door, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert "gamma" not in response.text
    error, request_id = door.error(door.stream_error(events))
    assert error["code"] == "upstream_stream_interrupted"
    assert error["type"] == ERROR_TYPES[door.name]["upstream"]
    assert request_id == response.headers["x-request-id"]
    assert_no_internals(events[-1][1], emulator.base_url.split("//")[1])
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.endpoint, row.model, row.stream) == (
        502,
        "upstream_stream_interrupted",
        door.name,
        model,
        True,
    )
    assert row.response_chars == len("alpha beta ")


@by_door
def test_upstream_dies_mid_body(gateway: Gateway, emulator: EmulatorServer, door: Door) -> None:
    """Not streaming: half a body then a dropped connection is a 502, not a 500 or a hang."""
    response = post(gateway, door, door.body(directive("hi", truncate_after=1)))
    row = assert_error(
        gateway, door, response, ExpectedError(502, "upstream_stream_interrupted", "upstream"),
        secret=(emulator.base_url.split("//")[1],),
    )  # fmt: skip
    assert row.model == door.model


@by_door
def test_upstream_sends_garbage(gateway: Gateway, emulator: EmulatorServer, door: Door) -> None:
    response = post(gateway, door, door.body(directive("hi", malformed=True)))
    row = assert_error(
        gateway, door, response, ExpectedError(502, "upstream_malformed_response", "upstream"),
        secret=(emulator.base_url.split("//")[1],),
    )  # fmt: skip
    assert row.model == door.model


@by_door
def test_upstream_error_body_is_not_passed_on(
    gateway: Gateway, emulator: EmulatorServer, door: Door
) -> None:
    """The provider's own error text (which may carry anything) never reaches the caller."""
    secret = marker()
    prompt = directive("hi", status=500, error_message=f"internal detail {secret}")
    response = post(gateway, door, door.body(prompt))
    row = assert_error(
        gateway, door, response, ExpectedError(502, "upstream_error", "upstream"),
        secret=(secret, emulator.base_url.split("//")[1]),
    )  # fmt: skip
    assert row.model == door.model


# --- paths and methods that do not exist -----------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("POST", "/nope", 404, "not_found"),
        ("POST", "/v1/completions", 404, "not_found"),
        ("POST", "/v2/chat/completions", 404, "not_found"),
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("PUT", "/v1/chat/completions", 405, "method_not_allowed"),
        ("GET", "/v1/messages", 405, "method_not_allowed"),
        ("DELETE", "/api/v1/chat", 405, "method_not_allowed"),
        ("POST", "/v1/models", 405, "method_not_allowed"),
        ("POST", "/health", 405, "method_not_allowed"),
    ],
)
def test_unknown_path_or_method(
    gateway: Gateway, method: str, path: str, status: int, code: str
) -> None:
    with gateway.http() as http:
        response = http.request(method, path, headers=auth(gateway))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if path == "/v1/messages":  # Anthropic's own shape on Anthropic's path
        assert set(body) == {"type", "error", "request_id"}
        assert (body["type"], body["error"]["type"]) == ("error", "invalid_request_error")
        request_id = body["request_id"]
    else:
        assert set(body) == {"error"}
        request_id = body["error"]["request_id"]
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert request_id == response.headers["x-request-id"]
    assert_no_internals(response.text)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/v1/chat/completions", "POST"), ("POST", "/v1/models", "GET")],
)
def test_method_not_allowed_says_what_is(
    gateway: Gateway, method: str, path: str, allowed: str
) -> None:
    """RFC 9110 15.5.6: a 405 response MUST carry an Allow header listing the methods."""
    with gateway.http() as http:
        response = http.request(method, path, headers=auth(gateway))
    assert response.status_code == 405
    assert allowed in response.headers.get("allow", ""), dict(response.headers)


def test_client_cannot_choose_the_request_id(gateway: Gateway) -> None:
    """The id is the gateway's own: a client's x-request-id (here, one already in the audit
    table) is neither echoed nor used, so it cannot collide with or forge another row."""
    first = post(gateway, OPENAI, OPENAI.body("ping"))
    taken = first.headers["x-request-id"]
    response = post(gateway, OPENAI, OPENAI.body("ping"), headers={"x-request-id": taken})
    assert response.status_code == 200, response.text
    ids = response.headers.get_list("x-request-id")
    assert len(ids) == 1
    assert ids[0] != taken
    assert REQUEST_ID.match(ids[0])
    assert gateway.audit_row(ids[0]).status == 200
    assert gateway.audit_row(taken).status == 200
