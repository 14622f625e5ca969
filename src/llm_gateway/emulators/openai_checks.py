"""Request validation for the emulated OpenAI Chat Completions API.

A gateway adapter that sends something the real API rejects should fail
against the emulator too, so this mirrors the checks (and, roughly, the
wording, ``param`` and ``code``) of the real service for the fields the
gateway uses. It only reads the request; rendering lives in ``openai.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_gateway.emulators.behaviour import Limits, Turn
from llm_gateway.emulators.transport import InvalidRequest, json_type_name

_ROLES = ("system", "developer", "user", "assistant", "tool")
_PART_TYPES: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a valid request that shape the answer."""

    model: str
    turns: tuple[Turn, ...]
    stream: bool
    include_usage: bool
    limits: Limits


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _wrong_type(param: str, expected: str, value: object) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {json_type_name(value)} "
        "instead.",
        param=param,
        code="invalid_type",
    )


def _invalid_value(
    param: str, value: object, supported: tuple[str, ...] | None = None
) -> InvalidRequest:
    message = f"Invalid value: '{value}'."
    if supported:
        message += " Supported values are: " + ", ".join(f"'{s}'" for s in supported) + "."
    return InvalidRequest(message, param=param, code="invalid_value")


def _content_texts(role: str, content: object, param: str) -> tuple[str, ...]:
    """Check one message's content and return its text parts."""
    if isinstance(content, str):
        return (content,)
    if not isinstance(content, list):
        raise _wrong_type(param, "one of a string or array of objects", content)
    texts: list[str] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise _wrong_type(where, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if kind not in _PART_TYPES[role]:
            raise _invalid_value(f"{where}.type", kind, tuple(sorted(_PART_TYPES[role])))
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _wrong_type(f"{where}.text", "a string", part.get("text"))
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise _missing(f"{where}.image_url.url")
    return tuple(texts)


def _tool_call_ids(message: dict[str, Any], i: int) -> list[str]:
    """Check an assistant message's ``tool_calls`` and return their ids."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _wrong_type(f"messages[{i}].tool_calls", "an array of objects", calls)
    ids: list[str] = []
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        if not isinstance(call, dict):
            raise _wrong_type(where, "an object", call)
        if not isinstance(call.get("id"), str):
            raise _missing(f"{where}.id")
        if call.get("type") != "function":
            raise _invalid_value(f"{where}.type", call.get("type"), ("function",))
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _missing(f"{where}.function.name")
        if not isinstance(function.get("arguments"), str):
            raise _wrong_type(f"{where}.function.arguments", "a string", function.get("arguments"))
        ids.append(call["id"])
    return ids


def _turn(message: object, i: int) -> tuple[Turn, list[str], str | None]:
    """Check one message; return its turn, its tool-call ids, and the id it answers."""
    if not isinstance(message, dict):
        raise _wrong_type(f"messages[{i}]", "an object", message)
    role = message.get("role")
    if role is None:
        raise _missing(f"messages[{i}].role")
    if role not in _ROLES:
        raise _invalid_value(f"messages[{i}].role", role, _ROLES)
    call_ids = _tool_call_ids(message, i) if role == "assistant" else []
    content = message.get("content")
    param = f"messages[{i}].content"
    if content is None:
        if role != "assistant" or not call_ids:  # only a tool-calling turn may omit content
            if "content" not in message:
                raise _missing(param)
            raise _wrong_type(param, "one of a string or array of objects", content)
        texts: tuple[str, ...] = ()
    else:
        texts = _content_texts(role, content, param)
    answered: str | None = None
    if role == "tool":
        answered = message.get("tool_call_id")
        if not isinstance(answered, str):
            raise _missing(f"messages[{i}].tool_call_id")
        return Turn("tool", tool_results=("".join(texts),)), [], answered
    return Turn("system" if role == "developer" else role, texts), call_ids, None


def _check_pairing(entries: list[tuple[str, list[str], str | None]]) -> None:
    """Tool messages must answer the preceding assistant ``tool_calls``, every one of them."""
    pending: set[str] | None = None
    for i, (role, call_ids, answered) in enumerate(entries):
        if role == "tool":
            if pending is None:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            if answered not in pending:
                raise InvalidRequest(
                    f"Invalid parameter: 'tool_call_id' of '{answered}' not found in "
                    "'tool_calls' of previous message.",
                    param=f"messages.[{i}].tool_call_id",
                )
            pending.discard(answered)
            continue
        if pending:
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}",
                param="messages",
            )
        pending = set(call_ids) if call_ids else None
    if pending:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(sorted(pending)),
            param="messages",
        )


def _optional_int(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(name, "an integer", value)
    if value < minimum:
        raise InvalidRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, but "
            f"got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _wrong_type("stop", "one of a string or array of strings", stop)
    return tuple(stop)


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _wrong_type("tools", "an array of objects", tools)
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise _invalid_value(f"tools[{j}].type", (tool or {}).get("type"), ("function",))
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _missing(f"tools[{j}].function.name")
    if body.get("tool_choice") is not None and not tools:
        raise InvalidRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
        )


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise _wrong_type(name, "a boolean", value)
    return bool(value)


def validate_chat(body: dict[str, Any]) -> ChatRequest:
    """Check a Chat Completions body; raise :class:`InvalidRequest` like the real API would."""
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter")
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array of objects", messages)
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    entries = [_turn(m, i) for i, m in enumerate(messages)]
    _check_pairing([(t.role, ids, answered) for t, ids, answered in entries])
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise InvalidRequest(
            f"Invalid value for 'n': the emulator supports only n=1, got {n}.",
            param="n",
            code="invalid_value",
        )
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if options is not None and not isinstance(options, dict):
        raise _wrong_type("stream_options", "an object", options)
    include_usage = bool(options and options.get("include_usage") is True)
    for name, top in (("temperature", 2.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top
        ):
            raise InvalidRequest(
                f"Invalid '{name}': expected a number between 0 and {top:g}.",
                param=name,
                code="invalid_value",
            )
    _check_tools(body)
    max_words = _optional_int(body, "max_completion_tokens", 1)
    max_tokens = _optional_int(body, "max_tokens", 1)
    return ChatRequest(
        model=model,
        turns=tuple(t for t, _, _ in entries),
        stream=stream,
        include_usage=include_usage,
        limits=Limits(max_words if max_words is not None else max_tokens, _stop(body)),
    )
