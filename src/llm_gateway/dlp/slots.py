"""Every string a canonical request forwards, and every text of an answer, as one list.

DLP scans and rewrites text wherever it is. On the way out that is every
string the provider will receive: the system prompt, every text part of
every message (tool results included), tool-call arguments (JSON text; the
replacements DLP writes contain no quotes or backslashes, so the JSON stays
valid), tool descriptions and every string in a tool's JSON Schema or the
response's (descriptions, defaults, enums, examples...), stop sequences and
the end-user id.

Some strings are names rather than text: tool names and call ids, a
message's ``name``, image URLs and media types, JSON Schema property names.
A redaction marker would break them (a URL with ``<EMAIL_REDACTED>`` in it,
a tool the model can no longer call), so such a slot is *fixed*: a finding
there that would be redacted refuses the request instead (``dlp_blocked``).
Inline image data is not text and is not scanned.

A slot's ``where`` is a path (``("tools", 0, "description")``), formatted
only when it has to be shown; ``prose`` marks the slots worth running NER on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_gateway.chat import ChatRequest, ChatResponse, ImagePart, Message, TextPart

Path = tuple[str | int, ...]


@dataclass(slots=True)
class Slot:
    """One piece of text and how to put a rewritten version back."""

    text: str
    write: Callable[[str], None] | None  # None: a name, which cannot be rewritten
    kind: str  # system, message, tool_result, tool_arguments, answer, ... (see request_slots)
    where: Path = ()
    prose: bool = False  # natural language, where names and places may appear

    @property
    def fixed(self) -> bool:
        return self.write is None

    def rewrite(self, text: str) -> None:
        """Put ``text`` in the slot's place; a fixed slot cannot be (its finding blocks)."""
        if self.write is None:
            raise ValueError(f"{where_text(self.where)} is a name and cannot be rewritten")
        self.write(text)


def where_text(path: Path) -> str:
    """``("tools", 0, "name")`` as ``tools[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def request_slots(chat: ChatRequest) -> list[Slot]:
    slots: list[Slot] = []
    if chat.system:
        slots.append(Slot(chat.system, _setter(chat, "system"), "system", ("system",), True))
    for i, message in enumerate(chat.messages):
        _message_slots(slots, message, i)
    for i, tool in enumerate(chat.tools):
        slots.append(Slot(tool.name, None, "tool_name", ("tools", i, "name")))
        if tool.description:
            where = ("tools", i, "description")
            slots.append(Slot(tool.description, _setter(tool, "description"), "tool", where, True))
        _json_slots(slots, tool.parameters, ("tools", i, "parameters"))
    if chat.tool_choice is not None and chat.tool_choice.name:
        slots.append(Slot(chat.tool_choice.name, None, "tool_name", ("tool_choice", "name")))
    for i, stop in enumerate(chat.stop):
        if stop:
            slots.append(Slot(stop, _item_setter(chat.stop, i), "stop", ("stop", i)))
    if chat.user:
        slots.append(Slot(chat.user, _setter(chat, "user"), "user", ("user",)))
    if chat.json_schema is not None:
        _response_format_slots(slots, chat.json_schema)
    return slots


def _response_format_slots(slots: list[Slot], json_schema: dict[str, Any]) -> None:
    """OpenAI's ``json_schema`` object: its ``name`` is a name, the rest a JSON document."""
    where: Path = ("response_format", "json_schema")
    for key, value in json_schema.items():
        if key == "name" and isinstance(value, str):
            slots.append(Slot(value, None, "schema_name", (*where, key)))
        elif isinstance(value, str):
            if value:
                slots.append(Slot(value, _item_setter(json_schema, key), "schema", (*where, key)))
        else:
            _json_slots(slots, value, (*where, key))


def _message_slots(slots: list[Slot], message: Message, i: int) -> None:
    kind = "tool_result" if message.role == "tool" else "message"
    for j, part in enumerate(message.content):
        where = ("messages", i, "content", j)
        if isinstance(part, TextPart):
            if part.text:
                slots.append(Slot(part.text, _setter(part, "text"), kind, where, True))
        elif isinstance(part, ImagePart):
            if part.url:
                slots.append(Slot(part.url, None, "image_url", (*where, "url")))
            if part.media_type:
                slots.append(Slot(part.media_type, None, "media_type", (*where, "media_type")))
    for j, call in enumerate(message.tool_calls):
        where = ("messages", i, "tool_calls", j)
        slots.append(Slot(call.id, None, "tool_call_id", (*where, "id")))
        slots.append(Slot(call.name, None, "tool_name", (*where, "name")))
        if call.arguments:
            slots.append(
                Slot(call.arguments, _setter(call, "arguments"), "tool_arguments", where, True)
            )
    if message.tool_call_id:
        answers = ("messages", i, "tool_call_id")
        slots.append(Slot(message.tool_call_id, None, "tool_call_id", answers))
    if message.name:
        slots.append(Slot(message.name, None, "name", ("messages", i, "name")))


def _json_slots(slots: list[Slot], node: Any, where: Path) -> None:
    """Every string of a JSON document: values rewritable in place, keys fixed."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key:
                slots.append(Slot(key, None, "schema_key", (*where, key)))
            if isinstance(value, str):
                if value:
                    slots.append(Slot(value, _item_setter(node, key), "schema", (*where, key)))
            else:
                _json_slots(slots, value, (*where, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                if value:
                    slots.append(Slot(value, _item_setter(node, i), "schema", (*where, i)))
            else:
                _json_slots(slots, value, (*where, i))


def response_slots(response: ChatResponse) -> list[Slot]:
    slots: list[Slot] = []
    if response.text:
        slots.append(Slot(response.text, _setter(response, "text"), "answer", prose=True))
    for call in response.tool_calls:
        if call.arguments:
            write = _setter(call, "arguments")
            slots.append(Slot(call.arguments, write, "tool_arguments", prose=True))
    return slots


def _setter(obj: object, name: str) -> Callable[[str], None]:
    def write(text: str) -> None:
        setattr(obj, name, text)

    return write


def _item_setter(container: Any, key: Any) -> Callable[[str], None]:
    def write(text: str) -> None:
        container[key] = text

    return write
