"""Request validation for the emulated Anthropic Messages API.

Mirrors the real API's rules for the fields the gateway sends, with messages
in its ``field.path: problem`` style, so that an adapter translating another
format into Messages (system prompts, tool results, first-turn roles) fails
here exactly where it would fail against Anthropic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_gateway.emulators.behaviour import Limits, Turn
from llm_gateway.emulators.transport import InvalidRequest

_BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
)
_USER_ONLY = frozenset({"tool_result", "image", "document"})
_ASSISTANT_ONLY = frozenset({"tool_use", "thinking", "redacted_thinking"})
_TOOL_CHOICES = ("auto", "any", "tool", "none")


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """The parts of a valid request that shape the answer."""

    model: str
    turns: tuple[Turn, ...]
    stream: bool
    limits: Limits


def _fail(path: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {problem}", param=path)


def _text_blocks(value: object, path: str) -> tuple[str, ...]:
    """A string, or a list of text blocks (the shape of ``system`` and tool results)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise _fail(path, "Input should be a valid string or a valid list")
    texts: list[str] = []
    for j, block in enumerate(value):
        if not isinstance(block, dict):
            raise _fail(f"{path}.{j}", "Input should be a valid dictionary")
        if block.get("type") == "text":
            if not isinstance(block.get("text"), str):
                raise _fail(f"{path}.{j}.text", "Field required")
            texts.append(block["text"])
        elif block.get("type") not in ("image", "document", "search_result"):
            raise _fail(f"{path}.{j}.type", f"Input tag '{block.get('type')}' is not allowed here")
    return tuple(texts)


def _block(block: object, role: str, path: str, texts: list[str], results: list[str]) -> str | None:
    """Check one content block; collect its text; return its tool id (use or result), if any."""
    if not isinstance(block, dict):
        raise _fail(path, "Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        expected = ", ".join(f"'{t}'" for t in _BLOCK_TYPES)
        raise _fail(
            f"{path}.type",
            f"Input tag '{kind}' found using 'type' does not match any "
            f"of the expected tags: {expected}",
        )
    if (role == "assistant" and kind in _USER_ONLY) or (role == "user" and kind in _ASSISTANT_ONLY):
        raise _fail(f"{path}.type", f"'{kind}' blocks are not allowed in '{role}' messages")
    check = _BLOCK_CHECKS.get(kind)
    return check(block, path, texts, results) if check is not None else None


def _text_block(block: dict[str, Any], path: str, texts: list[str], _: list[str]) -> None:
    if not isinstance(block.get("text"), str):
        raise _fail(f"{path}.text", "Field required")
    texts.append(block["text"])


def _image_block(block: dict[str, Any], path: str, _: list[str], __: list[str]) -> None:
    if not isinstance(block.get("source"), dict):
        raise _fail(f"{path}.source", "Field required")


def _tool_use_block(block: dict[str, Any], path: str, _: list[str], __: list[str]) -> str:
    for name in ("id", "name"):
        if not isinstance(block.get(name), str):
            raise _fail(f"{path}.{name}", "Field required")
    if not isinstance(block.get("input"), dict):
        raise _fail(f"{path}.input", "Input should be a valid dictionary")
    return str(block["id"])


def _tool_result_block(block: dict[str, Any], path: str, _: list[str], results: list[str]) -> str:
    if not isinstance(block.get("tool_use_id"), str):
        raise _fail(f"{path}.tool_use_id", "Field required")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        raise _fail(f"{path}.is_error", "Input should be a valid boolean")
    content = block.get("content", "")
    results.append("".join(_text_blocks(content, f"{path}.content")))
    return str(block["tool_use_id"])


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str, list[str], list[str]], str | None]] = {
    "text": _text_block,
    "image": _image_block,
    "tool_use": _tool_use_block,
    "tool_result": _tool_result_block,
}


def _message(message: object, i: int) -> tuple[Turn, list[str]]:
    """Check one message; return its turn and its tool ids (uses or results)."""
    path = f"messages.{i}"
    if not isinstance(message, dict):
        raise _fail(path, "Input should be a valid dictionary")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _fail(f"{path}.role", "Input should be 'user' or 'assistant'")
    if "content" not in message:
        raise _fail(f"{path}.content", "Field required")
    content = message["content"]
    if isinstance(content, str):
        return Turn(role, (content,)), []
    if not isinstance(content, list):
        raise _fail(f"{path}.content", "Input should be a valid list")
    texts: list[str] = []
    results: list[str] = []
    ids = [
        found
        for j, block in enumerate(content)
        if (found := _block(block, role, f"{path}.content.{j}", texts, results)) is not None
    ]
    return Turn(role, tuple(texts), tuple(results)), ids


def _check_pairing(entries: list[tuple[Turn, list[str]]]) -> None:
    """Every ``tool_result`` answers a ``tool_use`` of the message just before, and vice versa."""
    previous_uses: list[str] = []
    for i, (turn, ids) in enumerate(entries):
        if turn.role == "user":
            unexpected = [t for t in ids if t not in previous_uses]
            if unexpected:
                raise _fail(
                    f"messages.{i}.content",
                    "unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message.",
                )
            missing = [t for t in previous_uses if t not in ids]
            if missing:
                raise _fail(
                    f"messages.{i - 1}",
                    f"`tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message.",
                )
        previous_uses = ids if turn.role == "assistant" else []


def _number(body: dict[str, Any], name: str, low: float, high: float | None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, "Input should be a valid number")
    if value < low:
        raise _fail(name, f"Input should be greater than or equal to {low:g}")
    if high is not None and value > high:
        raise _fail(name, f"Input should be less than or equal to {high:g}")


def _check_options(body: dict[str, Any]) -> tuple[str, ...]:
    """Sampling, tools and metadata; returns the stop sequences."""
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _number(body, "top_k", 0, None)
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise _fail("stop_sequences", "Input should be a valid list of strings")
    _check_tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
            raise _fail("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            raise _fail("tool_choice.tool.name", "Field required")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _fail("metadata", "Input should be a valid dictionary")
    return tuple(stops or ())


def _check_tools(tools: object) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", "Input should be a valid list")
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _fail(f"tools.{j}", "Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue  # server tools (web search...) have their own shapes
        if not isinstance(tool.get("name"), str):
            raise _fail(f"tools.{j}.name", "Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise _fail(f"tools.{j}.input_schema", "Field required")


def validate_messages(body: dict[str, Any]) -> MessagesRequest:
    """Check a Messages body; raise :class:`InvalidRequest` like the real API would."""
    model = body.get("model")
    if model is None:
        raise _fail("model", "Field required")
    if not isinstance(model, str):
        raise _fail("model", "Input should be a valid string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _fail("max_tokens", "Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _fail("max_tokens", "Input should be a valid integer")
    if max_tokens < 1:
        raise _fail("max_tokens", "Input should be greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        raise _fail("messages", "Field required")
    if not isinstance(messages, list):
        raise _fail("messages", "Input should be a valid list")
    if not messages:
        raise _fail("messages", "at least one message is required")
    entries = [_message(m, i) for i, m in enumerate(messages)]
    if entries[0][0].role != "user":
        raise _fail("messages", 'first message must use the "user" role')
    _check_pairing(entries)
    system = body.get("system")
    system_texts = _text_blocks(system, "system") if system is not None else ()
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "Input should be a valid boolean")
    stops = _check_options(body)
    turns = [Turn("system", system_texts)] if system_texts else []
    turns += [turn for turn, _ in entries]
    return MessagesRequest(model, tuple(turns), bool(stream), Limits(max_tokens, stops))
