"""The gateway's own front door: ``POST /api/v1/chat``, in the product specification's format.

Request: ``{"model", "messages": [{"role", "content"}], "max_tokens"?, "temperature"?,
"stream"?}``. Response: ``{"model", "response", "metadata": {"tokens_used", "cost",
"pii_detected", "pii_entities", "request_id"}}``. With ``stream: true`` the answer is
server-sent events: ``delta`` events carrying ``{"text"}``, then one ``done`` event
carrying the same body a JSON answer would have (without ``response``), or an
``error`` event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from llm_gateway.api import fields as f
from llm_gateway.api.fields import JSON
from llm_gateway.chat import ChatRequest, ChatResponse, EventStream, Message, TextDelta, TextPart
from llm_gateway.errors import GatewayError, InvalidRequest
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.wire.sse import sse

ROLES = ("system", "user", "assistant")


def parse_request(body: bytes) -> ChatRequest:
    data = f.decode_body(body)
    model = f.req_str(data, "model")
    system: list[str] = []
    messages: list[Message] = []
    for i, raw in enumerate(f.non_empty_messages(data)):
        path = f"messages[{i}]"
        m = f.as_obj(raw, path)
        role = m.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"{path}.role: expected one of {', '.join(ROLES)}",
                code="invalid_role", param=f"{path}.role",
            )  # fmt: skip
        content = m.get("content")
        if not isinstance(content, str):
            raise f.invalid(f"{path}.content", "a string", content)
        if role == "system":
            system.append(content)
        else:
            messages.append(Message(role=role, content=[TextPart(content)]))
    if not messages:
        raise InvalidRequest(
            "messages: at least one user or assistant message is required",
            code="empty_messages", param="messages",
        )  # fmt: skip
    return ChatRequest(
        model=model,
        messages=messages,
        system="\n\n".join(system) if system else None,
        max_tokens=f.opt_int(data, "max_tokens", minimum=1),
        temperature=f.opt_number(data, "temperature", low=0, high=2),
        stream=bool(f.opt_bool(data, "stream")),
    )


def _metadata(ctx: RequestContext) -> JSON:
    metadata: JSON = {
        "tokens_used": ctx.usage.total_tokens if ctx.usage else 0,
        "cost": round(ctx.cost_usd, 8),
        "pii_detected": bool(ctx.dlp and ctx.dlp.findings),
        "pii_entities": ctx.dlp.labels if ctx.dlp else [],
        "request_id": ctx.request_id,
    }
    if ctx.call.grounding is not None:
        metadata["grounding"] = ctx.call.grounding.to_json()
    return metadata


def encode_response(ctx: RequestContext, response: ChatResponse) -> bytes:
    return orjson.dumps(
        {"model": response.model, "response": response.text, "metadata": _metadata(ctx)}
    )


async def encode_stream(ctx: RequestContext, stream: EventStream) -> AsyncGenerator[bytes, None]:
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                yield sse(orjson.dumps({"text": event.text}), "delta")
        yield sse(orjson.dumps({"model": stream.start.model, "metadata": _metadata(ctx)}), "done")
    except GatewayError as exc:
        yield stream_error(exc, ctx.request_id)


def stream_error(error: GatewayError, request_id: str) -> bytes:
    """The ``error`` event that ends a stream in error."""
    return sse(orjson.dumps(error_body(error, request_id)), "error")


def error_body(error: GatewayError, request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "type": error.kind.value,
            "code": error.code,
            "message": error.message,
            "request_id": request_id,
            **error.details,
        }
    }
