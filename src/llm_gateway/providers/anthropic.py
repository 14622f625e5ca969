"""Anthropic Messages API (``POST /v1/messages``, ``x-api-key``, ``anthropic-version``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llm_gateway.config import Deployment
from llm_gateway.errors import UpstreamError, UpstreamRateLimited, UpstreamStatusError
from llm_gateway.providers.base import decode_json, ended_early, malformed, upstream_request
from llm_gateway.transport import UpstreamRequest
from llm_gateway.wire.anthropic import FINISH_FROM_ANTHROPIC, content_blocks
from llm_gateway.wire.sse import parse_sse

ANTHROPIC_VERSION = "2023-06-01"


def _part_block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
    return {"type": "image", "source": source}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        only_text = len(message.content) == 1 and isinstance(message.content[0], TextPart)
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.text if only_text else [_part_block(p) for p in message.content],
        }
        if message.is_error:
            block["is_error"] = True
        return [block]
    if message.role == "assistant":
        return content_blocks(message.text, message.tool_calls)  # history: must be valid
    return [_part_block(p) for p in message.content if not (isinstance(p, TextPart) and not p.text)]


def messages_to_anthropic(messages: list[Message]) -> list[dict[str, Any]]:
    """Tool results become user turns; consecutive turns of one role are merged."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    cached = int(raw.get("cache_creation_input_tokens") or 0) + int(
        raw.get("cache_read_input_tokens") or 0
    )
    return Usage(int(raw.get("input_tokens") or 0) + cached, int(raw.get("output_tokens") or 0))


class AnthropicAdapter:
    def build_request(self, deployment: Deployment, chat: ChatRequest) -> UpstreamRequest:
        payload: dict[str, Any] = {
            "model": deployment.upstream_model,
            "max_tokens": chat.max_tokens or deployment.default_max_tokens,
            "messages": messages_to_anthropic(chat.messages),
        }
        if chat.system:
            payload["system"] = chat.system
        if chat.stream:
            payload["stream"] = True
        for key, value in (
            # OpenAI's scale goes to 2, Anthropic's to 1: beyond is "as random as it gets".
            ("temperature", None if chat.temperature is None else min(chat.temperature, 1.0)),
            ("top_p", chat.top_p),
            ("top_k", chat.top_k),
        ):
            if value is not None:
                payload[key] = value
        if chat.stop:
            payload["stop_sequences"] = chat.stop
        if chat.user:
            payload["metadata"] = {"user_id": chat.user}
        if chat.tools:
            payload["tools"] = [
                {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "input_schema": t.parameters or {"type": "object", "properties": {}},
                }
                for t in chat.tools
            ]
        if (choice := chat.tool_choice) is not None:
            if choice.name:
                payload["tool_choice"] = {"type": "tool", "name": choice.name}
            else:
                mode = {"auto": "auto", "none": "none", "required": "any"}[choice.mode]
                payload["tool_choice"] = {"type": mode}
        return upstream_request(deployment, "/messages", _headers(deployment), payload)

    def probe_request(self, deployment: Deployment) -> UpstreamRequest:
        return upstream_request(deployment, "/models?limit=1", _headers(deployment), None)

    def parse_response(self, deployment: Deployment, body: bytes) -> ChatResponse:
        data = decode_json(body)
        try:
            text: list[str] = []
            calls: list[ToolCall] = []
            for block in data["content"]:
                if block["type"] == "text":
                    text.append(block["text"])
                elif block["type"] == "tool_use":
                    arguments = orjson.dumps(block.get("input") or {}).decode()
                    calls.append(ToolCall(block["id"], block["name"], arguments))
            return ChatResponse(
                model=deployment.name,
                text="".join(text),
                tool_calls=calls,
                finish_reason=FINISH_FROM_ANTHROPIC.get(data.get("stop_reason"), "stop"),
                usage=_usage(data.get("usage")),
            )
        except (KeyError, TypeError):
            raise malformed("message") from None

    async def parse_stream(
        self, deployment: Deployment, lines: AsyncIterator[bytes]
    ) -> AsyncGenerator[StreamEvent, None]:
        progress = _Progress(deployment.name)
        async for event in parse_sse(lines):
            data = decode_json(event.data, "stream event")
            kind = data.get("type") if isinstance(data, dict) else None
            if kind is None:
                raise malformed("stream event")
            if kind == "error":
                raise _stream_error((data.get("error") or {}).get("type"))
            if kind == "message_stop":
                yield StreamEnd(finish_reason=progress.finish, usage=progress.usage)
                return
            handle = _HANDLERS.get(kind)
            out = handle(progress, data) if handle is not None else None  # ping: ignored
            if out is not None:
                yield out
        raise ended_early(progress.started)


@dataclass(slots=True)
class _Progress:
    """What an Anthropic stream has said so far."""

    model: str
    usage: Usage = field(default_factory=Usage)
    finish: FinishReason = "stop"
    started: bool = False
    tool_of_block: dict[int, int] = field(default_factory=dict)  # block index -> tool index
    tool_has_input: set[int] = field(default_factory=set)


def _message_start(progress: _Progress, data: dict[str, Any]) -> StreamEvent | None:
    progress.started = True
    progress.usage = _usage((data.get("message") or {}).get("usage"))
    return StreamStart(model=progress.model, input_tokens=progress.usage.input_tokens)


def _block_start(progress: _Progress, data: dict[str, Any]) -> StreamEvent | None:
    block = data.get("content_block") or {}
    if block.get("type") == "tool_use":
        tool = progress.tool_of_block[data.get("index", -1)] = len(progress.tool_of_block)
        return ToolCallDelta(tool, id=block.get("id"), name=block.get("name"))
    if block.get("type") == "text" and block.get("text"):
        return TextDelta(block["text"])
    return None


def _block_delta(progress: _Progress, data: dict[str, Any]) -> StreamEvent | None:
    delta = data.get("delta") or {}
    if delta.get("type") == "text_delta" and delta.get("text"):
        return TextDelta(delta["text"])
    if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
        tool = progress.tool_of_block.get(data.get("index", -1))
        if tool is not None:
            progress.tool_has_input.add(tool)
            return ToolCallDelta(tool, arguments=delta["partial_json"])
    return None


def _block_stop(progress: _Progress, data: dict[str, Any]) -> StreamEvent | None:
    tool = progress.tool_of_block.get(data.get("index", -1))
    if tool is not None and tool not in progress.tool_has_input:
        return ToolCallDelta(tool, arguments="{}")
    return None


def _message_delta(progress: _Progress, data: dict[str, Any]) -> StreamEvent | None:
    delta = data.get("delta") or {}
    progress.finish = FINISH_FROM_ANTHROPIC.get(delta.get("stop_reason"), progress.finish)
    final = data.get("usage") or {}
    progress.usage.output_tokens = int(final.get("output_tokens") or progress.usage.output_tokens)
    if final.get("input_tokens") is not None:
        progress.usage.input_tokens = _usage(final).input_tokens
    return None


#: What each event kind gives: at most one event (or None), and what it notes in passing.
_HANDLERS: dict[str, Callable[[_Progress, dict[str, Any]], StreamEvent | None]] = {
    "content_block_delta": _block_delta,
    "message_start": _message_start,
    "content_block_start": _block_start,
    "content_block_stop": _block_stop,
    "message_delta": _message_delta,
}


def _stream_error(kind: Any) -> UpstreamError:
    said = "the provider reported an error mid-stream"
    if kind == "overloaded_error":
        return UpstreamStatusError(said, code="upstream_overloaded", status=503)
    if kind == "rate_limit_error":
        return UpstreamRateLimited(said)
    return UpstreamStatusError(said)


def _headers(deployment: Deployment) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if deployment.api_key:
        headers["x-api-key"] = deployment.api_key
    return headers
