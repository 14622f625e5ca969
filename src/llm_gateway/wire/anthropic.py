"""Anthropic Messages: the tables and encoders both the front door and the adapter use.

The Anthropic-compatible front door (:mod:`llm_gateway.api.anthropic`) writes
these to clients; the Anthropic adapter (:mod:`llm_gateway.providers.anthropic`)
writes and reads them to and from upstreams. The Ollama adapter borrows
:func:`tool_input`: Ollama, too, wants tool arguments as an object.
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.chat import FinishReason, ToolCall
from llm_gateway.errors import InvalidRequest

#: An upstream's ``stop_reason`` to ours; anything unknown is read as "stop".
FINISH_FROM_ANTHROPIC: dict[str | None, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: Ours to Anthropic's, total over FinishReason. Anthropic has no "error" reason: "end_turn".
FINISH_TO_ANTHROPIC: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}


def tool_input(call: ToolCall) -> Any:
    """Anthropic (and Ollama) want the arguments as an object; ours are JSON text.

    Arguments a caller sent in its conversation history must be valid JSON.
    """
    if not call.arguments.strip():
        return {}
    try:
        return orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"the arguments of tool call {call.id!r} are not valid JSON", code="invalid_tool_call"
        ) from None


def answered_tool_input(call: ToolCall) -> Any:
    """Arguments a model produced may be broken JSON (a call cut off by max_tokens, say):
    they are passed on, unparsed, rather than dropped or blamed on the caller."""
    try:
        return tool_input(call)
    except InvalidRequest:
        return {"_unparsed_arguments": call.arguments}


def content_blocks(
    text: str, calls: list[ToolCall], *, answered: bool = False
) -> list[dict[str, Any]]:
    """An assistant turn's blocks: history sent upstream (adapter), or an answer (front door).

    ``answered``: the calls come from a model, so broken arguments are passed on
    (:func:`answered_tool_input`) instead of refused as a caller's mistake.
    """
    parse = answered_tool_input if answered else tool_input
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": parse(c)} for c in calls]
    return blocks
