"""The emulated OpenAI Chat Completions API (also standing in for OpenAI-compatible servers).

Serves ``POST /v1/chat/completions`` and ``GET /v1/models`` in the wire format
the official ``openai`` SDK parses: ``chat.completion`` objects, SSE streams of
``chat.completion.chunk`` ending in ``data: [DONE]``, incremental tool-call
deltas, and ``{"error": {message, type, param, code}}`` errors. The answer
itself comes from :mod:`llm_gateway.emulators.behaviour`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.emulators.behaviour import Script, build_script, split_fixed
from llm_gateway.emulators.openai_checks import ChatRequest, validate_chat
from llm_gateway.emulators.state import EmulatorState
from llm_gateway.emulators.transport import (
    Delivery,
    DeliveryResponse,
    Frame,
    InvalidRequest,
    dumps,
    failure_delivery,
    json_response,
    malformed_body,
    parse_json_object,
    random_id,
    timed_delivery,
)

#: Models listed by ``GET /v1/models`` (any model name is accepted for chat).
MODELS = ("gpt-4o-mini", "gpt-4o", "emulator-demo")
SYSTEM_FINGERPRINT = "fp_emulator"
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"

_FINISH = {"stop_sequence": "stop"}
#: Directive ``status`` -> (type, code, message) as the real API spells them.
_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to make this request."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_payload(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _request_id() -> dict[str, str]:
    return {"x-request-id": random_id("req_", 32, "0123456789abcdef")}


def _error(
    status: int, message: str, error_type: str, param: str | None = None, code: str | None = None
) -> Response:
    return json_response(status, error_payload(message, error_type, param, code), _request_id())


def check_auth(headers: Mapping[str, str], api_key: str | None) -> Response | None:
    """401 unless a Bearer key is present (and equal to the expected one, when set)."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
        )
    key = key.strip()
    if api_key is not None and key != api_key:
        masked = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        return _error(
            401,
            f"Incorrect API key provided: {masked}.",
            "invalid_request_error",
            code="invalid_api_key",
        )
    return None


def _usage(script: Script) -> dict[str, Any]:
    return {
        "prompt_tokens": script.input_tokens,
        "completion_tokens": script.output_tokens,
        "total_tokens": script.input_tokens + script.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _arguments(script: Script) -> list[tuple[str, str, str]]:
    """(id, name, arguments JSON text) for each tool call, ids in OpenAI's ``call_`` style."""
    return [
        (call.id or random_id("call_", 24), call.name, orjson.dumps(call.arguments).decode())
        for call in script.tool_calls
    ]


def _completion(script: Script, request: ChatRequest, completion_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": script.text if script.text or not script.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    calls = _arguments(script)
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in calls
        ]
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH.get(script.finish, script.finish),
            }
        ],
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if script.directive.report_usage:
        body["usage"] = _usage(script)
    return body


def _sse(payload: Any) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


def _stream_frames(script: Script, request: ChatRequest, completion_id: str) -> list[Frame]:
    """The chunk sequence of a streamed completion, in the order the real API sends it."""
    with_usage = request.include_usage and script.directive.report_usage
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        payload = {**base, "choices": [choice]}
        if with_usage:
            payload["usage"] = None
        return _sse(payload)

    frames = [Frame(chunk({"role": "assistant", "content": "", "refusal": None}))]
    frames += [Frame(chunk({"content": text}), "content") for text in script.chunks]
    for index, (cid, name, args) in enumerate(_arguments(script)):
        head = {
            "index": index,
            "id": cid,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        frames.append(Frame(chunk({"tool_calls": [head]}), "content"))
        frames += [
            Frame(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                "content",
            )
            for piece in split_fixed(args)
        ]
    directive = script.directive
    if directive.stream_error is not None:
        message = (
            directive.error_message or "The server had an error while processing your request."
        )
        error = error_payload(message, directive.stream_error)
        return [*frames, Frame(_sse(error), "end")]
    frames.append(Frame(chunk({}, _FINISH.get(script.finish, script.finish)), "end"))
    if with_usage:
        frames.append(Frame(_sse({**base, "choices": [], "usage": _usage(script)}), "end"))
    frames.append(Frame(b"data: [DONE]\n\n", "end"))
    return frames


def _malform(frames: list[Frame]) -> list[Frame]:
    """Replace the first content chunk (or add one) with a ``data:`` line that is not JSON."""
    bad = Frame(b'data: {"id": "chatcmpl-broken", "choices": [\n\n', "content")
    for i, frame in enumerate(frames):
        if frame.kind == "content":
            return [*frames[:i], bad, *frames[i + 1 :]]
    first_end = next(i for i, f in enumerate(frames) if f.kind == "end")
    return [*frames[:first_end], bad, *frames[first_end:]]


def render(script: Script, request: ChatRequest, state: EmulatorState) -> Delivery:
    """Turn the script into the HTTP answer: an error, a completion, or a chunk stream."""
    directive = script.directive
    default_ms = state.config.default_latency_ms
    unavailable = (503, dumps(error_payload("The emulator is shutting down.", "server_error")))
    status = directive.error_status
    if status is not None:
        error_type, code, message = _STATUS_ERRORS.get(
            status,
            (
                "server_error" if status >= 500 else "invalid_request_error",
                None,
                f"Error {status}.",
            ),
        )
        if status == 404:
            message = f"The model `{request.model}` does not exist or you do not have access to it."
        payload = error_payload(
            directive.error_message or message, directive.error_type or error_type, None, code
        )
        delivery = failure_delivery(
            directive, status, payload, default_latency_ms=default_ms, headers=_request_id()
        )
        delivery.unavailable = unavailable
        return delivery
    completion_id = random_id("chatcmpl-", 29)
    if request.stream:
        frames = _stream_frames(script, request, completion_id)
        if directive.malformed:
            frames = _malform(frames)
        return timed_delivery(
            directive,
            default_ms,
            media_type=SSE_MEDIA_TYPE,
            frames=frames,
            headers={**_request_id(), "cache-control": "no-cache"},
            unavailable=unavailable,
        )
    body = dumps(_completion(script, request, completion_id))
    return timed_delivery(
        directive,
        default_ms,
        headers=_request_id(),
        unavailable=unavailable,
        body=malformed_body(body) if directive.malformed else body,
    )


async def chat_completions(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``POST /v1/chat/completions``: authenticate, validate, then answer as scripted."""
    denied = check_auth(request.headers, state.config.api_key)
    if denied is not None:
        return denied
    try:
        chat = validate_chat(parse_json_object(raw))
    except InvalidRequest as exc:
        if exc.code == "invalid_json":
            return _error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)",
                "invalid_request_error",
            )
        return _error(400, exc.message, "invalid_request_error", exc.param, exc.code)
    script = build_script(
        chat.turns,
        reply_prefix=state.config.reply_prefix,
        stream=chat.stream,
        limits=chat.limits,
        model=chat.model,
    )
    return DeliveryResponse(render(script, chat, state), state)


async def list_models(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``GET /v1/models`` in OpenAI's list shape (authenticated, like the real one)."""
    denied = check_auth(request.headers, state.config.api_key)
    if denied is not None:
        return denied
    data = [
        {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "emulator"}
        for m in MODELS
    ]
    return json_response(200, {"object": "list", "data": data}, _request_id())
