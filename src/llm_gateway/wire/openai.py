"""OpenAI Chat Completions: the tables and encoders both the front door and the adapter use.

The OpenAI-compatible front door (:mod:`llm_gateway.api.openai`) writes these
to clients; the OpenAI adapter (:mod:`llm_gateway.providers.openai`) writes
and reads them to and from upstreams, so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from llm_gateway.chat import FinishReason, ToolCall

#: An upstream's ``finish_reason`` to ours; anything unknown is read as "stop".
FINISH_FROM_OPENAI: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
#: Ours to OpenAI's, total over FinishReason. OpenAI has no "error" reason: it reads "stop".
FINISH_TO_OPENAI: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "error": "stop",
}


def tool_calls_to_openai(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """``message.tool_calls``: in a request's history (adapter) and in an answer (front door)."""
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]
