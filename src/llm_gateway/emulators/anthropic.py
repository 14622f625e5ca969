"""The emulated Anthropic Messages API.

Serves ``POST /v1/messages`` (and the Anthropic flavour of ``GET /v1/models``)
in the wire format the official ``anthropic`` SDK parses: ``message`` objects
with content blocks, SSE streams with named events in the documented order
(message_start, content_block_start, ping, content_block_delta...,
content_block_stop, message_delta, message_stop), in-band ``event: error``, and
``{"type": "error", "error": {...}, "request_id": ...}`` error bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.emulators.anthropic_checks import MessagesRequest, validate_messages
from llm_gateway.emulators.behaviour import Script, build_script, split_fixed
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

#: Models listed by ``GET /v1/models`` when called Anthropic-style.
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "emulator-demo")
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "stop_sequence": "stop_sequence",
}
#: Directive ``status`` -> (error type, default message).
_STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_MESSAGES_BY_TYPE = {error_type: message for error_type, message in _STATUS_ERRORS.values()}
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def _error(status: int, error_type: str, message: str) -> Response:
    request_id = random_id("req_", 24, _BASE58)
    return json_response(
        status, _error_body(error_type, message, request_id), {"request-id": request_id}
    )


def check_headers(headers: Mapping[str, str], api_key: str | None) -> Response | None:
    """401 without a (matching) key; 400 without ``anthropic-version``.

    The key is read from ``x-api-key`` or, failing that, ``Authorization:
    Bearer``: the official SDK (v2.x) sends its ``api_key`` the latter way.
    """
    key = headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        key = bearer.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return _error(401, "authentication_error", "x-api-key header is required")
    if api_key is not None and key != api_key:
        return _error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version", "").strip():
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    return None


def _usage(script: Script, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": script.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _stop(script: Script, request_stops: tuple[str, ...]) -> tuple[str, str | None]:
    reason = _STOP_REASONS.get(script.finish, script.finish)
    sequence = script.stop_sequence
    if reason == "stop_sequence" and sequence is None and request_stops:
        sequence = request_stops[0]
    return reason, sequence if reason == "stop_sequence" else None


def _tool_blocks(script: Script) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_use",
            "id": call.id or random_id("toolu_01", 22, _BASE58),
            "name": call.name,
            "input": call.arguments,
        }
        for call in script.tool_calls
    ]


def _message(script: Script, request: MessagesRequest, message_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if script.text or not script.tool_calls:
        content.append({"type": "text", "text": script.text})
    content += _tool_blocks(script)
    reason, sequence = _stop(script, request.limits.stop)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": _usage(script, script.output_tokens),
    }


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def _stream_frames(script: Script, request: MessagesRequest, message_id: str) -> list[Frame]:
    """The documented event sequence; the last block's stop onwards are the terminal frames."""
    start = _message(script, request, message_id)
    start.update(
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage=_usage(script, min(1, script.output_tokens)),
    )
    frames = [Frame(_event("message_start", {"type": "message_start", "message": start}))]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if script.chunks or not script.tool_calls:
        deltas = [{"type": "text_delta", "text": c} for c in script.chunks]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for tool in _tool_blocks(script):
        pieces = split_fixed(orjson.dumps(tool["input"]).decode())
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        blocks.append(({**tool, "input": {}}, deltas))
    for index, (block, deltas) in enumerate(blocks):
        frames.append(
            Frame(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
        )
        if index == 0:
            frames.append(Frame(_event("ping", {"type": "ping"})))
        frames += [
            Frame(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                ),
                "content",
            )
            for delta in deltas
        ]
        last = index == len(blocks) - 1
        frames.append(
            Frame(
                _event("content_block_stop", {"type": "content_block_stop", "index": index}),
                "end" if last else "meta",
            )
        )
    directive = script.directive
    if directive.stream_error is not None:
        default = _MESSAGES_BY_TYPE.get(directive.stream_error, "Internal server error")
        error = {
            "type": "error",
            "error": {
                "type": directive.stream_error,
                "message": directive.error_message or default,
            },
        }
        return [*frames[:-1], Frame(_event("error", error), "end")]
    reason, sequence = _stop(script, request.limits.stop)
    frames.append(
        Frame(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": {"output_tokens": script.output_tokens},
                },
            ),
            "end",
        )
    )
    frames.append(Frame(_event("message_stop", {"type": "message_stop"}), "end"))
    return frames


def _malform(frames: list[Frame]) -> list[Frame]:
    """Replace the first delta (or add one) with an event whose data is not JSON."""
    bad = Frame(
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {\n\n',
        "content",
    )
    for i, frame in enumerate(frames):
        if frame.kind == "content":
            return [*frames[:i], bad, *frames[i + 1 :]]
    first_end = next(i for i, f in enumerate(frames) if f.kind == "end")
    return [*frames[:first_end], bad, *frames[first_end:]]


def render(script: Script, request: MessagesRequest, state: EmulatorState) -> Delivery:
    """Turn the script into the HTTP answer: an error, a message, or an event stream."""
    directive = script.directive
    default_ms = state.config.default_latency_ms
    request_id = random_id("req_", 24, _BASE58)
    headers = {"request-id": request_id}
    unavailable = (529, dumps(_error_body("overloaded_error", "Overloaded", request_id)))
    status = directive.error_status
    if status is not None:
        error_type, message = _STATUS_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}")
        )
        payload = _error_body(
            directive.error_type or error_type, directive.error_message or message, request_id
        )
        delivery = failure_delivery(
            directive, status, payload, default_latency_ms=default_ms, headers=headers
        )
        delivery.unavailable = unavailable
        return delivery
    message_id = random_id("msg_01", 22, _BASE58)
    if request.stream:
        frames = _stream_frames(script, request, message_id)
        if directive.malformed:
            frames = _malform(frames)
        return timed_delivery(
            directive,
            default_ms,
            media_type=SSE_MEDIA_TYPE,
            frames=frames,
            headers={**headers, "cache-control": "no-cache"},
            unavailable=unavailable,
        )
    body = dumps(_message(script, request, message_id))
    return timed_delivery(
        directive,
        default_ms,
        headers=headers,
        unavailable=unavailable,
        body=malformed_body(body) if directive.malformed else body,
    )


async def messages(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``POST /v1/messages``: check headers, validate, then answer as scripted."""
    denied = check_headers(request.headers, state.config.api_key)
    if denied is not None:
        return denied
    try:
        parsed = validate_messages(parse_json_object(raw))
    except InvalidRequest as exc:
        message = (
            "There was an error parsing the body of your request: " + exc.message
            if exc.code in ("invalid_json", "invalid_type")
            else exc.message
        )
        return _error(400, "invalid_request_error", message)
    script = build_script(
        parsed.turns,
        reply_prefix=state.config.reply_prefix,
        stream=parsed.stream,
        limits=parsed.limits,
        model=parsed.model,
    )
    return DeliveryResponse(render(script, parsed, state), state)


async def list_models(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``GET /v1/models`` in Anthropic's paginated shape."""
    denied = check_headers(request.headers, state.config.api_key)
    if denied is not None:
        return denied
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in MODELS
    ]
    return json_response(
        200, {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    )
