"""The emulated Ollama chat API.

Serves ``POST /api/chat``, ``GET /api/tags`` and ``GET /api/version`` in
Ollama's wire format: no authentication, ``stream`` defaulting to TRUE when
absent (a classic adapter bug), NDJSON streams whose last line has
``done: true`` with the counts, tool-call arguments as JSON objects rather
than strings, durations in nanoseconds, and ``{"error": "..."}`` errors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from llm_gateway.emulators.behaviour import Limits, Script, Turn, build_script
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

#: Models listed by ``GET /api/tags`` (any model name is accepted for chat).
MODELS = ("llama3.2:latest", "emulator-demo:latest")
VERSION = "0.12.6"
NDJSON_MEDIA_TYPE = "application/x-ndjson"

_ROLES = ("system", "user", "assistant", "tool")
_DONE_REASONS = {
    "length": "length",
    "tool_calls": "stop",
    "content_filter": "stop",
    "stop_sequence": "stop",
}
_STATUS_MESSAGES = {
    400: "invalid request",
    401: "unauthorized",
    429: "too many requests",
    500: "an error was encountered while running the model",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def _now() -> str:
    """RFC 3339 with a ``Z``, as Go's time.Time marshals in UTC."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def _limits(options: object) -> Limits:
    if options is None:
        return Limits()
    if not isinstance(options, dict):
        raise InvalidRequest("json: cannot unmarshal options into Go struct field of type map")
    num_predict = options.get("num_predict")
    if isinstance(num_predict, bool) or not isinstance(num_predict, int | None):
        raise InvalidRequest('option "num_predict" must be of type integer')
    stop = options.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest('option "stop" must be of type array')
    max_words = num_predict if num_predict is not None and num_predict > 0 else None
    return Limits(max_words, tuple(stop))


def _turn(message: object, i: int) -> Turn:
    if not isinstance(message, dict):
        raise InvalidRequest(f"messages[{i}]: expected an object")
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidRequest(f"messages[{i}]: invalid role {role!r}, expected one of {_ROLES}")
    content = message.get("content", "")
    if not isinstance(content, str):
        raise InvalidRequest(
            f"json: cannot unmarshal {type(content).__name__} into Go struct field "
            "Message.messages.content of type string"
        )
    images = message.get("images")
    if images is not None and (
        not isinstance(images, list) or not all(isinstance(x, str) for x in images)
    ):
        raise InvalidRequest(f"messages[{i}].images: expected an array of base64 strings")
    if role == "tool":
        return Turn("tool", tool_results=(content,))
    return Turn(role, (content,))


def _counts(script: Script, started: float) -> dict[str, Any]:
    """The final line's statistics; durations are nanoseconds derived from the counts."""
    load, prompt = 1_000_000, 100_000 * max(script.input_tokens, 1)
    generate = 1_000_000 * max(script.output_tokens, 1)
    return {
        "total_duration": load + prompt + generate + int(started * 1e9),
        "load_duration": load,
        "prompt_eval_count": script.input_tokens,
        "prompt_eval_duration": prompt,
        "eval_count": script.output_tokens,
        "eval_duration": generate,
    }


def _tool_calls(script: Script) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or random_id("call_", 8, "abcdefghijklmnopqrstuvwxyz0123456789"),
            "function": {"index": i, "name": call.name, "arguments": call.arguments},
        }
        for i, call in enumerate(script.tool_calls)
    ]


def _final(script: Script, model: str, latency_s: float, content: str) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": _DONE_REASONS.get(script.finish, script.finish),
        **_counts(script, latency_s),
    }


def _stream_frames(script: Script, model: str, latency_s: float) -> list[Frame]:
    def line(message: dict[str, Any]) -> bytes:
        payload = {"model": model, "created_at": _now(), "message": message, "done": False}
        return dumps(payload) + b"\n"

    frames = [Frame(line({"role": "assistant", "content": c}), "content") for c in script.chunks]
    if script.tool_calls:
        frames.append(
            Frame(
                line({"role": "assistant", "content": "", "tool_calls": _tool_calls(script)}),
                "content",
            )
        )
    directive = script.directive
    if directive.stream_error is not None:
        message = directive.error_message or directive.stream_error
        return [*frames, Frame(dumps({"error": message}) + b"\n", "end")]
    frames.append(Frame(dumps(_final(script, model, latency_s, "")) + b"\n", "end"))
    if directive.malformed:
        bad = Frame(b'{"model": "' + model.encode() + b'", "message": {\n', "content")
        first = next((i for i, f in enumerate(frames) if f.kind == "content"), None)
        frames = (
            [*frames[:first], bad, *frames[first + 1 :]] if first is not None else [bad, *frames]
        )
    return frames


def render(script: Script, model: str, stream: bool, state: EmulatorState) -> Delivery:
    """Turn the script into the HTTP answer: an error, one JSON object, or NDJSON lines."""
    directive = script.directive
    default_ms = state.config.default_latency_ms
    unavailable = (503, dumps({"error": _STATUS_MESSAGES[503]}))
    status = directive.error_status
    if status is not None:
        default = (
            f'model "{model}" not found, try pulling it first'
            if status == 404
            else _STATUS_MESSAGES.get(status, f"error {status}")
        )
        payload = {"error": directive.error_message or default}
        delivery = failure_delivery(directive, status, payload, default_latency_ms=default_ms)
        delivery.unavailable = unavailable
        return delivery
    latency_s = directive.latency_s(default_ms)
    if stream:
        return timed_delivery(
            directive,
            default_ms,
            media_type=NDJSON_MEDIA_TYPE,
            frames=_stream_frames(script, model, latency_s),
            unavailable=unavailable,
        )
    answer = _final(script, model, latency_s, script.text)
    if script.tool_calls:
        answer["message"]["tool_calls"] = _tool_calls(script)
    body = dumps(answer)
    return timed_delivery(
        directive,
        default_ms,
        unavailable=unavailable,
        body=malformed_body(body) if directive.malformed else body,
    )


async def chat(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``POST /api/chat``: validate, then answer as scripted (streaming unless told not to)."""
    if not raw.strip():
        return _error(400, "missing request body")
    try:
        body = parse_json_object(raw)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model is required")
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise InvalidRequest("json: cannot unmarshal messages into Go value of type []Message")
        turns = [_turn(m, i) for i, m in enumerate(messages)]
        stream = body.get("stream", True)
        if stream is None:
            stream = True
        if not isinstance(stream, bool):
            raise InvalidRequest("json: cannot unmarshal stream into Go value of type bool")
        limits = _limits(body.get("options"))
    except InvalidRequest as exc:
        return _error(400, exc.message)
    if not turns:  # Ollama answers an empty chat by just loading the model
        return json_response(
            200,
            {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load",
                "done": True,
            },
        )
    script = build_script(
        turns, reply_prefix=state.config.reply_prefix, stream=stream, limits=limits, model=model
    )
    return DeliveryResponse(render(script, model, stream, state), state)


async def tags(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``GET /api/tags``: the locally "pulled" models."""
    models = [
        {
            "name": m,
            "model": m,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 2_019_393_189,
            "digest": "0" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
        }
        for m in MODELS
    ]
    return json_response(200, {"models": models})


async def version(request: Request, state: EmulatorState, raw: bytes) -> Response:
    """``GET /api/version``: the cheapest Ollama health check."""
    return json_response(200, {"version": VERSION})
