"""A canonical chat request as the checker's :class:`Conversation`: its tool calls and results.

Each tool message (OpenAI's ``role: tool``, Anthropic's ``tool_result``
blocks, Ollama's tool messages: all canonical ``tool`` messages) is paired
with the assistant's tool call it answers, for the call's name and
arguments. The user's messages are the question (an answer that repeats
them is not inventing anything); the system prompt and the assistant's
earlier text are context.
"""

from __future__ import annotations

from llm_gateway.chat import ChatRequest, ToolCall
from llm_gateway.grounding.model import Conversation, ToolResult


def conversation_of(chat: ChatRequest) -> Conversation | None:
    """The request's conversation, or None when it holds no tool result to check against."""
    if not any(m.role == "tool" for m in chat.messages):
        return None
    calls: dict[str, ToolCall] = {
        call.id: call for m in chat.messages if m.role == "assistant" for call in m.tool_calls
    }
    results = []
    for m in chat.messages:
        if m.role != "tool":
            continue
        call = calls.get(m.tool_call_id or "")
        results.append(
            ToolResult(
                call_id=m.tool_call_id,
                name=call.name if call is not None else m.name,
                arguments=call.arguments if call is not None else "",
                output=m.text,
                is_error=m.is_error,
            )
        )
    question = "\n".join(m.text for m in chat.messages if m.role == "user")
    earlier = [m.text for m in chat.messages if m.role == "assistant" and m.text]
    context = "\n".join([chat.system, *earlier] if chat.system else earlier)
    return Conversation(tuple(results), question=question, context=context)
