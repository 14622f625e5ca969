"""The Anthropic-compatible front door: ``POST /v1/messages``.

``tool_result`` blocks inside a user turn become canonical tool messages (one
per result, in order) followed by the turn's remaining blocks as a user
message. Thinking blocks sent back from earlier turns are dropped: they are
signed by Anthropic and mean nothing to another provider.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from llm_gateway.api import fields as f
from llm_gateway.api.fields import JSON
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    EventStream,
    ImagePart,
    Message,
    StreamEnd,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
)
from llm_gateway.errors import ErrorKind, GatewayError, InvalidRequest
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.wire.anthropic import FINISH_TO_ANTHROPIC, content_blocks
from llm_gateway.wire.sse import sse

_IGNORED_BLOCKS = ("thinking", "redacted_thinking")

# --- wire -> canonical ---------------------------------------------------------


def parse_request(body: bytes) -> ChatRequest:
    data = f.decode_body(body)
    model = f.req_str(data, "model")
    max_tokens = f.opt_int(data, "max_tokens", minimum=1)
    if max_tokens is None:
        raise f.missing("max_tokens")
    messages: list[Message] = []
    for i, raw in enumerate(f.non_empty_messages(data)):
        messages.extend(_turn(raw, i))
    metadata = f.opt_obj(data, "metadata") or {}
    return ChatRequest(
        model=model,
        messages=messages,
        system=_system(data.get("system")),
        tools=[_tool(t, i) for i, t in enumerate(f.opt_list(data, "tools"))],
        tool_choice=_tool_choice(f.opt_obj(data, "tool_choice")),
        max_tokens=max_tokens,
        temperature=f.opt_number(data, "temperature", low=0, high=1),
        top_p=f.opt_number(data, "top_p", low=0, high=1),
        top_k=f.opt_int(data, "top_k", minimum=0),
        stop=f.stop_list(data, "stop_sequences"),
        stream=bool(f.opt_bool(data, "stream")),
        user=f.opt_str(metadata, "user_id", "metadata."),
    )


def _system(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    if not isinstance(value, list):
        raise f.invalid("system", "a string or an array of text blocks", value)
    texts = []
    for i, raw in enumerate(value):
        block = f.as_obj(raw, f"system[{i}]")
        if block.get("type") != "text":
            raise f.invalid(f"system[{i}].type", "'text'", code="unsupported_content")
        texts.append(f.opt_str(block, "text", f"system[{i}].") or "")
    return "\n\n".join(texts) or None


def _turn(raw: Any, i: int) -> list[Message]:
    path = f"messages[{i}]"
    m = f.as_obj(raw, path)
    role = m.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(
            f"{path}.role: expected 'user' or 'assistant' (the system prompt goes in 'system')",
            code="invalid_role", param=f"{path}.role",
        )  # fmt: skip
    content = m.get("content")
    if isinstance(content, str):
        return [Message(role=role, content=[TextPart(content)])]
    if not isinstance(content, list):
        raise f.invalid(f"{path}.content", "a string or an array of content blocks", content)
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for j, raw_block in enumerate(content):
        where = f"{path}.content[{j}]"
        block = f.as_obj(raw_block, where)
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(f.opt_str(block, "text", f"{where}.") or ""))
        elif kind == "image":
            parts.append(
                _image(f.as_obj(block.get("source"), f"{where}.source"), f"{where}.source")
            )
        elif kind == "tool_use" and role == "assistant":
            arguments = f.json_text(f.as_obj(block.get("input", {}), f"{where}.input"))
            calls.append(
                ToolCall(
                    f.req_str(block, "id", f"{where}."),
                    f.req_str(block, "name", f"{where}."),
                    arguments,
                )
            )
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, where))
        elif kind in _IGNORED_BLOCKS:
            continue
        else:
            raise InvalidRequest(
                f"{where}.type: unsupported content block type {kind!r} in a {role} turn",
                code="unsupported_content", param=f"{where}.type",
            )  # fmt: skip
    if role == "assistant":
        return [Message(role="assistant", content=parts, tool_calls=calls)]
    return results + ([Message(role="user", content=parts)] if parts or not results else [])


def _image(source: JSON, path: str) -> ImagePart:
    kind = source.get("type")
    if kind == "base64":
        return ImagePart(
            data=f.req_str(source, "data", f"{path}."),
            media_type=f.opt_str(source, "media_type", f"{path}."),
        )
    if kind == "url":
        return ImagePart(url=f.req_str(source, "url", f"{path}."))
    raise f.invalid(f"{path}.type", "'base64' or 'url'", code="unsupported_content")


def _tool_result(block: JSON, where: str) -> Message:
    content = block.get("content")
    parts: list[ContentPart]
    if content is None or isinstance(content, str):
        parts = [TextPart(content or "")]
    elif isinstance(content, list):
        parts = []
        for k, raw in enumerate(content):
            path = f"{where}.content[{k}]"
            inner = f.as_obj(raw, path)
            kind = inner.get("type")
            if kind == "text":
                parts.append(TextPart(f.opt_str(inner, "text", f"{path}.") or ""))
            elif kind == "image":
                source = f"{path}.source"
                parts.append(_image(f.as_obj(inner.get("source"), source), source))
            else:
                raise InvalidRequest(
                    f"{path}.type: unsupported block type {kind!r} in a tool result",
                    code="unsupported_content",
                    param=f"{path}.type",
                )
    else:
        raise f.invalid(f"{where}.content", "a string or an array of blocks", content)
    return Message(
        role="tool",
        content=parts,
        tool_call_id=f.req_str(block, "tool_use_id", f"{where}."),
        is_error=bool(f.opt_bool(block, "is_error", f"{where}.")),
    )


def _tool(raw: Any, i: int) -> ToolSpec:
    path = f"tools[{i}]"
    tool = f.as_obj(raw, path)
    if tool.get("type") not in (None, "custom"):
        raise f.invalid(
            f"{path}.type",
            "a custom tool (server tools are not supported)",
            code="unsupported_tool",
        )
    return ToolSpec(
        name=f.req_str(tool, "name", f"{path}."),
        description=f.opt_str(tool, "description", f"{path}."),
        parameters=f.opt_obj(tool, "input_schema", f"{path}.") or {},
    )


def _tool_choice(choice: JSON | None) -> ToolChoice | None:
    if choice is None:
        return None
    kind = choice.get("type")
    if kind == "tool":
        return ToolChoice(mode="required", name=f.req_str(choice, "name", "tool_choice."))
    modes = {"auto": "auto", "any": "required", "none": "none"}
    if not isinstance(kind, str) or kind not in modes:
        raise f.invalid("tool_choice.type", "'auto', 'any', 'tool' or 'none'")
    return ToolChoice(mode=modes[kind])  # type: ignore[arg-type]


# --- canonical -> wire ---------------------------------------------------------


def encode_response(ctx: RequestContext, response: ChatResponse) -> bytes:
    usage = response.usage
    body: JSON = {
        "id": f"msg_{ctx.request_id}",
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content_blocks(response.text, response.tool_calls, answered=True),
        "stop_reason": FINISH_TO_ANTHROPIC[response.finish_reason],
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
        },
    }
    if ctx.call.grounding is not None:
        body["grounding"] = ctx.call.grounding.to_json()
    return orjson.dumps(body)


def _message_delta(ctx: RequestContext, end: StreamEnd) -> JSON:
    """The stream's last delta: why it stopped, the usage and, if checked, the grounding."""
    usage = end.usage
    delta: JSON = {
        "delta": {"stop_reason": FINISH_TO_ANTHROPIC[end.finish_reason], "stop_sequence": None},
        "usage": {
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
        },
    }
    if ctx.call.grounding is not None:  # the verdict on the whole text
        delta["grounding"] = ctx.call.grounding.to_json()
    return delta


def _event(kind: str, payload: JSON) -> bytes:
    return sse(orjson.dumps({"type": kind, **payload}), kind)


async def encode_stream(ctx: RequestContext, stream: EventStream) -> AsyncGenerator[bytes, None]:
    """Anthropic's event sequence: message_start, content blocks, message_delta, message_stop.

    Canonical deltas carry no block boundaries, so blocks are opened when the
    kind of content changes (text, or a new tool call) and closed before the next.
    """
    message: JSON = {
        "id": f"msg_{ctx.request_id}", "type": "message", "role": "assistant",
        "model": stream.start.model, "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": stream.start.input_tokens or 0, "output_tokens": 0},
    }  # fmt: skip
    yield _event("message_start", {"message": message})
    yield _event("ping", {})
    blocks = 0  # blocks opened so far
    open_block: int | None = None
    text_block: int | None = None
    tool_blocks: dict[int, int] = {}  # canonical tool index -> block index
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                if text_block is None or open_block != text_block:
                    if open_block is not None:
                        yield _event("content_block_stop", {"index": open_block})
                    text_block = open_block = blocks
                    blocks += 1
                    yield _event(
                        "content_block_start",
                        {"index": open_block, "content_block": {"type": "text", "text": ""}},
                    )
                delta = {"type": "text_delta", "text": event.text}
                yield _event("content_block_delta", {"index": text_block, "delta": delta})
            elif isinstance(event, ToolCallDelta):
                if event.index not in tool_blocks:
                    if open_block is not None:
                        yield _event("content_block_stop", {"index": open_block})
                    tool_blocks[event.index] = open_block = blocks
                    blocks += 1
                    block = {
                        "type": "tool_use",
                        "id": event.id or f"toolu_{ctx.request_id}_{event.index}",
                        "name": event.name or "",
                        "input": {},
                    }
                    yield _event(
                        "content_block_start", {"index": open_block, "content_block": block}
                    )
                if event.arguments:
                    delta = {"type": "input_json_delta", "partial_json": event.arguments}
                    yield _event(
                        "content_block_delta", {"index": tool_blocks[event.index], "delta": delta}
                    )
            elif isinstance(event, StreamEnd):
                if open_block is not None:
                    yield _event("content_block_stop", {"index": open_block})
                yield _event("message_delta", _message_delta(ctx, event))
                yield _event("message_stop", {})
    except GatewayError as exc:
        yield stream_error(exc, ctx.request_id)


def stream_error(error: GatewayError, request_id: str) -> bytes:
    """The ``error`` event that ends a stream in error, as Anthropic sends one."""
    return sse(orjson.dumps(error_body(error, request_id)), "error")


# --- errors --------------------------------------------------------------------

_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.UNAVAILABLE: "overloaded_error",
    ErrorKind.INTERNAL: "api_error",
}


def error_body(error: GatewayError, request_id: str) -> JSON:
    return {
        "type": "error",
        "error": {
            "type": _TYPES[error.kind],
            "message": error.message,
            "code": error.code,
            **error.details,
        },
        "request_id": request_id,
    }
