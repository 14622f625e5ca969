"""What a confirmation holds, as JSON: the request it stopped, or the answer it withheld.

Released unchanged: a withheld answer's tool calls come back with the same
ids, names and argument text, byte for byte.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)


def dump(value: ChatRequest | ChatResponse) -> dict[str, Any]:
    return dataclasses.asdict(value)


def request_of(data: dict[str, Any]) -> ChatRequest:
    fields = dict(data)
    fields["messages"] = [_message(m) for m in data["messages"]]
    fields["tools"] = [ToolSpec(**t) for t in data["tools"]]
    fields["tool_choice"] = ToolChoice(**data["tool_choice"]) if data["tool_choice"] else None
    return ChatRequest(**fields)


def answer_of(data: dict[str, Any]) -> ChatResponse:
    fields = dict(data)
    fields["tool_calls"] = [ToolCall(**c) for c in data["tool_calls"]]
    fields["usage"] = Usage(**data["usage"]) if data["usage"] else None
    return ChatResponse(**fields)


def _message(data: dict[str, Any]) -> Message:
    fields = dict(data)
    fields["content"] = [_part(p) for p in data["content"]]
    fields["tool_calls"] = [ToolCall(**c) for c in data["tool_calls"]]
    return Message(**fields)


def _part(data: dict[str, Any]) -> ContentPart:
    return TextPart(**data) if "text" in data else ImagePart(**data)
