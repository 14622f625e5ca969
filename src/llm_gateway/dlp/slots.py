"""Every place text flows in a canonical request or answer, readable and writable as one list.

DLP scans and rewrites text wherever it is: the system prompt, every text part
of every message (tool results included), and tool-call arguments (JSON text;
the replacements DLP writes contain no quotes or backslashes, so the JSON stays
valid). Image parts are not text and are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llm_gateway.chat import ChatRequest, ChatResponse, TextPart


@dataclass(slots=True)
class Slot:
    """One piece of text and how to put a rewritten version back."""

    text: str
    write: Callable[[str], None]
    kind: str  # system, message, tool_result, tool_arguments, answer


def request_slots(chat: ChatRequest) -> list[Slot]:
    slots: list[Slot] = []
    if chat.system:

        def set_system(text: str) -> None:
            chat.system = text

        slots.append(Slot(chat.system, set_system, "system"))
    for message in chat.messages:
        kind = "tool_result" if message.role == "tool" else "message"
        for part in message.content:
            if isinstance(part, TextPart) and part.text:
                slots.append(Slot(part.text, _setter(part, "text"), kind))
        for call in message.tool_calls:
            if call.arguments:
                slots.append(Slot(call.arguments, _setter(call, "arguments"), "tool_arguments"))
    return slots


def response_slots(response: ChatResponse) -> list[Slot]:
    slots: list[Slot] = []
    if response.text:
        slots.append(Slot(response.text, _setter(response, "text"), "answer"))
    for call in response.tool_calls:
        if call.arguments:
            slots.append(Slot(call.arguments, _setter(call, "arguments"), "tool_arguments"))
    return slots


def _setter(obj: object, name: str) -> Callable[[str], None]:
    def write(text: str) -> None:
        setattr(obj, name, text)

    return write
