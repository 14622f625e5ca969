"""OpenAI Chat Completions, and any server that speaks it (vLLM, LM Studio, ...).

Streams are always requested with ``stream_options.include_usage`` so that the
gateway can account tokens from the provider's own count; whether the caller
sees a usage chunk is the front door's business.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

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
from llm_gateway.config import Deployment, Provider
from llm_gateway.errors import UpstreamStatusError
from llm_gateway.providers.base import decode_json, ended_early, malformed, upstream_request
from llm_gateway.transport import UpstreamRequest
from llm_gateway.wire.openai import FINISH_FROM_OPENAI, tool_calls_to_openai
from llm_gateway.wire.sse import parse_sse

# --- canonical -> OpenAI --------------------------------------------------------


def content_to_openai(message: Message) -> str | list[dict[str, Any]]:
    if all(isinstance(p, TextPart) for p in message.content):
        return message.text
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append({"type": "image_url", "image_url": {"url": image_url(part)}})
    return parts


def image_url(part: ImagePart) -> str:
    if part.url is not None:
        return part.url
    return f"data:{part.media_type or 'image/png'};base64,{part.data or ''}"


def messages_to_openai(chat: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if chat.system:
        out.append({"role": "system", "content": chat.system})
    for m in chat.messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text})
        elif m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if m.tool_calls:
                msg["tool_calls"] = tool_calls_to_openai(m.tool_calls)
            out.append(msg)
        else:
            user: dict[str, Any] = {"role": "user", "content": content_to_openai(m)}
            if m.name:
                user["name"] = m.name
            out.append(user)
    return out


class OpenAIAdapter:
    def build_request(self, deployment: Deployment, chat: ChatRequest) -> UpstreamRequest:
        payload: dict[str, Any] = {
            "model": deployment.upstream_model,
            "messages": messages_to_openai(chat),
        }
        if chat.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        if chat.max_tokens is not None:
            # OpenAI itself deprecated max_tokens; compatible servers mostly know only it.
            key = (
                "max_completion_tokens" if deployment.provider is Provider.OPENAI else "max_tokens"
            )
            payload[key] = chat.max_tokens
        for key, value in (
            ("temperature", chat.temperature),
            ("top_p", chat.top_p),
            ("seed", chat.seed),
            ("user", chat.user),
        ):
            if value is not None:
                payload[key] = value
        if chat.stop:
            payload["stop"] = chat.stop
        if chat.json_schema is not None:
            payload["response_format"] = {"type": "json_schema", "json_schema": chat.json_schema}
        elif chat.json_output:
            payload["response_format"] = {"type": "json_object"}
        if chat.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                    },
                }
                for t in chat.tools
            ]
        if chat.tool_choice is not None:
            choice = chat.tool_choice
            payload["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if choice.name
                else choice.mode
            )
        return upstream_request(deployment, "/chat/completions", _headers(deployment), payload)

    def probe_request(self, deployment: Deployment) -> UpstreamRequest:
        return upstream_request(deployment, "/models", _headers(deployment), None)

    def parse_response(self, deployment: Deployment, body: bytes) -> ChatResponse:
        data = decode_json(body)
        try:
            choice = data["choices"][0]
            message = choice["message"]
            calls = [
                ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
                for c in message.get("tool_calls") or ()
            ]
            finish = FINISH_FROM_OPENAI.get(choice.get("finish_reason"), "stop")
            text = message.get("content") or ""
            if not text and message.get("refusal"):  # the model declined: say so, in its words
                text, finish = message["refusal"], "content_filter"
            return ChatResponse(
                model=deployment.name,
                text=text,
                tool_calls=calls,
                finish_reason=finish,
                usage=_usage(data.get("usage")),
            )
        except (KeyError, IndexError, TypeError, AttributeError):
            raise malformed("chat completion") from None

    async def parse_stream(
        self, deployment: Deployment, lines: AsyncIterator[bytes]
    ) -> AsyncGenerator[StreamEvent, None]:
        started = False
        finish: FinishReason | None = None
        usage: Usage | None = None
        async for event in parse_sse(lines):
            if event.data == "[DONE]":
                break
            chunk = decode_json(event.data, "stream chunk")
            if not isinstance(chunk, dict):
                raise malformed("stream chunk")
            if "error" in chunk:
                raise UpstreamStatusError("the provider reported an error mid-stream")
            if not started:
                started = True
                yield StreamStart(model=deployment.name)
            usage = _usage(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if text := delta.get("content"):
                    yield TextDelta(text)
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") or {}
                    yield ToolCallDelta(
                        index=call.get("index", 0),
                        arguments=function.get("arguments") or "",
                        id=call.get("id"),
                        name=function.get("name"),
                    )
                if reason := choice.get("finish_reason"):
                    finish = FINISH_FROM_OPENAI.get(reason, "stop")
        else:
            if finish is None:  # EOF without [DONE] and without a finish reason
                raise ended_early(started)
        if not started:
            yield StreamStart(model=deployment.name)
        yield StreamEnd(finish_reason=finish or "stop", usage=usage)


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def _headers(deployment: Deployment) -> dict[str, str]:
    return {"authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
