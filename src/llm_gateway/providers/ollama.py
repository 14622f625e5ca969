"""Ollama's native chat API (``POST /api/chat``, NDJSON streaming).

Ollama streams unless told otherwise, so ``stream`` is always sent explicitly.
Tool-call arguments travel as JSON objects, not text, and calls carry no ids:
the gateway makes ids up so that clients in other formats can answer them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
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
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llm_gateway.config import Deployment
from llm_gateway.errors import InvalidRequest, UpstreamStatusError
from llm_gateway.providers.base import decode_json, ended_early, malformed, upstream_request
from llm_gateway.transport import UpstreamRequest
from llm_gateway.wire.anthropic import tool_input


def _images(message: Message) -> list[str]:
    images = []
    for part in message.content:
        if isinstance(part, ImagePart):
            if part.data is None:
                raise InvalidRequest(
                    "this model's provider (Ollama) accepts only inline base64 images",
                    code="unsupported_content",
                )
            images.append(part.data)
    return images


def _messages(chat: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if chat.system:
        out.append({"role": "system", "content": chat.system})
    tool_names: dict[str, str] = {}
    for m in chat.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.text}
        if images := _images(m):
            msg["images"] = images
        if m.tool_calls:
            msg["tool_calls"] = [
                {"function": {"name": c.name, "arguments": tool_input(c)}} for c in m.tool_calls
            ]
            tool_names.update((c.id, c.name) for c in m.tool_calls)
        if m.role == "tool" and m.tool_call_id in tool_names:
            msg["tool_name"] = tool_names[m.tool_call_id]
        out.append(msg)
    return out


def _tool_calls(message: dict[str, Any], first_index: int = 0) -> list[ToolCall]:
    calls = []
    for i, call in enumerate(message.get("tool_calls") or (), start=first_index):
        function = call["function"]
        arguments = function.get("arguments") or {}
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        calls.append(ToolCall(call.get("id") or f"call_{i}", function["name"], text))
    return calls


def _usage(data: dict[str, Any]) -> Usage:
    return Usage(int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0))


def _finish(data: dict[str, Any], saw_tool_calls: bool) -> FinishReason:
    if saw_tool_calls:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


class OllamaAdapter:
    def build_request(self, deployment: Deployment, chat: ChatRequest) -> UpstreamRequest:
        options: dict[str, Any] = {}
        for key, value in (
            ("temperature", chat.temperature),
            ("top_p", chat.top_p),
            ("top_k", chat.top_k),
            ("seed", chat.seed),
            ("num_predict", chat.max_tokens),
        ):
            if value is not None:
                options[key] = value
        if chat.stop:
            options["stop"] = chat.stop
        payload: dict[str, Any] = {
            "model": deployment.upstream_model,
            "messages": _messages(chat),
            "stream": chat.stream,
        }
        if options:
            payload["options"] = options
        if chat.json_schema is not None and "schema" in chat.json_schema:
            payload["format"] = chat.json_schema["schema"]  # Ollama takes the schema itself
        elif chat.json_output:
            payload["format"] = "json"
        if chat.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description or "",
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                    },
                }
                for t in chat.tools
            ]
        return upstream_request(deployment, "/api/chat", {}, payload)

    def probe_request(self, deployment: Deployment) -> UpstreamRequest:
        return upstream_request(deployment, "/api/tags", {}, None)

    def parse_response(self, deployment: Deployment, body: bytes) -> ChatResponse:
        data = decode_json(body)
        try:
            message = data["message"]
            calls = _tool_calls(message)
            return ChatResponse(
                model=deployment.name,
                text=message.get("content") or "",
                tool_calls=calls,
                finish_reason=_finish(data, bool(calls)),
                usage=_usage(data),
            )
        except (KeyError, TypeError, AttributeError):
            raise malformed("chat answer") from None

    async def parse_stream(
        self, deployment: Deployment, lines: AsyncIterator[bytes]
    ) -> AsyncGenerator[StreamEvent, None]:
        started = False
        calls_seen = 0
        async for line in lines:
            if not line.strip():
                continue
            data = decode_json(line, "stream line")
            if not isinstance(data, dict):
                raise malformed("stream line")
            if "error" in data:
                raise UpstreamStatusError("the provider reported an error mid-stream")
            if not started:
                started = True
                yield StreamStart(model=deployment.name)
            message = data.get("message") or {}
            if text := message.get("content"):
                yield TextDelta(text)
            try:
                calls = _tool_calls(message, calls_seen)
            except (KeyError, TypeError):
                raise malformed("tool call") from None
            for call in calls:
                yield ToolCallDelta(calls_seen, call.arguments, call.id, call.name)
                calls_seen += 1
            if data.get("done"):
                yield StreamEnd(_finish(data, calls_seen > 0), _usage(data))
                return
        raise ended_early(started)
