"""DLP covers every string a request forwards, on every front door, field by field.

One table per wire format names what happens to each string field of the
door's request body: scanned as text (redacted in place), scanned as a name
(a finding refuses the request: a marker would break it), accepted only from
a fixed list of values, not forwarded at all, or not text (image bytes).
Each string of the door's full body (``tests/api/bodies.py``, which
``test_bodies`` checks against what the parser reads) gets a secret planted
in it in turn; the request goes through the real gateway to each provider
adapter, and the emulator's log of what it received must not contain it.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Iterator
from enum import Enum
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.api.bodies import ANTHROPIC_BODY, NATIVE_BODY, OPENAI_BODY
from tests.e2e.conftest import Gateway
from tests.e2e.dlp_support import tag, upstream_requests


class Kind(Enum):
    TEXT = "text"  # scanned; redacted in place
    NAME = "name"  # scanned; a finding that would be redacted refuses the request
    ENUM = "enum"  # only a fixed list of values is accepted
    MODEL = "model"  # the gateway's own model name: never forwarded
    DROPPED = "dropped"  # accepted and not forwarded
    BYTES = "bytes"  # image data: not text


# Which string fields each door reads, and what becomes of them. "*" stands for
# any string inside a JSON document (a tool's schema), keys included.
OPENAI_FIELDS = {
    "model": Kind.MODEL,
    "messages[].role": Kind.ENUM,
    "messages[].content": Kind.TEXT,
    "messages[].content[].type": Kind.ENUM,
    "messages[].content[].text": Kind.TEXT,
    "messages[].content[].image_url.url": Kind.NAME,
    "messages[].name": Kind.NAME,
    "messages[].tool_calls[].id": Kind.NAME,
    "messages[].tool_calls[].type": Kind.DROPPED,
    "messages[].tool_calls[].function.name": Kind.NAME,
    "messages[].tool_calls[].function.arguments": Kind.TEXT,
    "messages[].tool_call_id": Kind.NAME,
    "tools[].type": Kind.ENUM,
    "tools[].function.name": Kind.NAME,
    "tools[].function.description": Kind.TEXT,
    "tools[].function.parameters.*": Kind.TEXT,
    "tool_choice.type": Kind.DROPPED,
    "tool_choice.function.name": Kind.NAME,
    "stop[]": Kind.TEXT,
    "response_format.type": Kind.ENUM,
    "response_format.json_schema.name": Kind.NAME,
    "response_format.json_schema.description": Kind.TEXT,
    "response_format.json_schema.schema.*": Kind.TEXT,
    "user": Kind.TEXT,
}
ANTHROPIC_FIELDS = {
    "model": Kind.MODEL,
    "system[].type": Kind.ENUM,
    "system[].text": Kind.TEXT,
    "messages[].role": Kind.ENUM,
    "messages[].content": Kind.TEXT,
    "messages[].content[].type": Kind.ENUM,
    "messages[].content[].text": Kind.TEXT,
    "messages[].content[].source.type": Kind.ENUM,
    "messages[].content[].source.media_type": Kind.NAME,
    "messages[].content[].source.data": Kind.BYTES,
    "messages[].content[].source.url": Kind.NAME,
    "messages[].content[].thinking": Kind.DROPPED,
    "messages[].content[].id": Kind.NAME,
    "messages[].content[].name": Kind.NAME,
    "messages[].content[].input.*": Kind.TEXT,
    "messages[].content[].tool_use_id": Kind.NAME,
    "messages[].content[].content": Kind.TEXT,
    "messages[].content[].content[].type": Kind.ENUM,
    "messages[].content[].content[].text": Kind.TEXT,
    "tools[].type": Kind.ENUM,
    "tools[].name": Kind.NAME,
    "tools[].description": Kind.TEXT,
    "tools[].input_schema.*": Kind.TEXT,
    "tool_choice.type": Kind.ENUM,
    "tool_choice.name": Kind.NAME,
    "stop_sequences[]": Kind.TEXT,
    "metadata.user_id": Kind.TEXT,
}
NATIVE_FIELDS = {
    "model": Kind.MODEL,
    "messages[].role": Kind.ENUM,
    "messages[].content": Kind.TEXT,
}
DOORS: dict[str, tuple[str, dict[str, Any], dict[str, Kind]]] = {
    "openai": ("/v1/chat/completions", OPENAI_BODY, OPENAI_FIELDS),
    "anthropic": ("/v1/messages", ANTHROPIC_BODY, ANTHROPIC_FIELDS),
    "native": ("/api/v1/chat", NATIVE_BODY, NATIVE_FIELDS),
}
# JSON documents whose every string (keys too) is a field of its own.
DOCUMENTS = (
    "tools[].function.parameters",
    "response_format.json_schema.schema",
    "messages[].content[].input",
    "tools[].input_schema",
)
# A tool call's input travels as JSON text: its keys are text like its values.
TEXT_DOCUMENTS = ("messages[].content[].input",)
MODELS = ("gpt-emu", "claude-emu", "ollama-emu")

Path = tuple[str | int, ...]


def normalised(path: Path) -> str:
    text = ""
    for part in path:
        text += "[]" if isinstance(part, int) else (f".{part}" if text else part)
    for document in DOCUMENTS:
        if text.startswith(document + ".") or text.startswith(document + "["):
            return document + ".*"
    return text


def string_fields(node: Any, path: Path = ()) -> Iterator[tuple[Path, bool]]:
    """(path, is a key) of every string in a JSON document: values, and keys of objects
    inside the JSON documents above (other keys are the wire format's own)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if normalised((*path, key)).endswith(".*"):
                yield (*path, key), True
            yield from string_fields(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from string_fields(value, (*path, i))
    elif isinstance(node, str):
        yield path, False


def planted(body: dict[str, Any], path: Path, is_key: bool, value: str) -> dict[str, Any]:
    """The body with ``value`` planted in the string at ``path`` (or in that key's name)."""
    copied = copy.deepcopy(body)
    parent: Any = copied  # a JSON object or array: indexed by the path's names and positions
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if is_key:
        assert isinstance(last, str)
        parent[f"{last} {value}"] = parent.pop(last)
        return copied
    old = parent[last]
    if normalised(path).endswith("arguments"):  # JSON text: keep it JSON
        new = json.dumps({"note": value})
    elif old.startswith("data:"):
        new = f"data:image/png;name={value};base64,AAAA"
    elif old.startswith("https://"):
        new = f"https://example.org/a.png?ref={value}"
    else:
        new = f"{old} {value}"
    parent[last] = new
    return copied


def for_model(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The door's full body aimed at ``model``; Ollama takes inline images only."""
    body = copy.deepcopy(body)
    body["model"] = model
    if model == "ollama-emu":
        for message in body["messages"]:
            if isinstance(message.get("content"), list):
                message["content"] = [p for p in message["content"] if not _url_image(p)]
    return body


def _url_image(part: Any) -> bool:
    return isinstance(part, dict) and (
        (part.get("image_url") or {}).get("url", "").startswith("https://")
        or (part.get("source") or {}).get("type") == "url"
    )


def aws_key() -> str:
    return "AKIA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=16))


def email() -> str:
    return f"dlp.{''.join(random.choices(string.ascii_lowercase, k=10))}@example.org"


def send(gateway: Gateway, door: str, body: dict[str, Any]) -> httpx.Response:
    path = DOORS[door][0]
    headers = {"authorization": f"Bearer {gateway.token()}", "anthropic-version": "2023-06-01"}
    with gateway.http() as http:
        return http.post(path, json=body, headers=headers)


def received(emulator: EmulatorServer) -> str:
    """Everything the provider emulator has been sent, as one text."""
    log = httpx.get(f"{emulator.base_url}/_emulator/requests", timeout=10).json()
    return json.dumps(log, ensure_ascii=False)


@pytest.mark.parametrize("door", DOORS)
def test_the_table_names_every_string_field_of_the_door(door: str) -> None:
    _, body, table = DOORS[door]
    seen = {normalised(path) for path, _ in string_fields(body)}
    assert seen - set(table) == set(), "a field the gateway forwards is missing from the table"
    assert set(table) - seen == set(), "the table names a field the full body does not use"


def expected(kind: Kind, response: httpx.Response) -> bool:
    """Whether the gateway answered as a secret planted in a ``kind`` field calls for."""
    status, text = response.status_code, response.text
    if kind in (Kind.TEXT, Kind.NAME):
        return status == 400 and "dlp_blocked" in text
    if kind is Kind.ENUM:
        return status == 400 and "dlp_blocked" not in text
    if kind is Kind.MODEL:
        return status == 404
    return status == 200  # DROPPED


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("door", DOORS)
def test_a_secret_in_any_field_never_reaches_the_provider(
    gateway: Gateway, emulator: EmulatorServer, door: str, model: str
) -> None:
    _, full, table = DOORS[door]
    body = for_model(full, model)
    response = send(gateway, door, body)
    assert response.status_code == 200, f"the full body itself must pass: {response.text}"
    planted_keys = []
    for path, is_key in string_fields(body):
        kind = table[normalised(path)]
        if kind is Kind.BYTES:
            continue  # image bytes are not text (see the module docstring of dlp/slots.py)
        secret = aws_key()
        response = send(gateway, door, planted(body, path, is_key, secret))
        assert expected(kind, response), (normalised(path), is_key, response.text[:300])
        planted_keys.append((path, secret))
    assert len(planted_keys) >= len({normalised(p) for p, _ in string_fields(body)})
    log = received(emulator)
    leaked = [(normalised(p), s) for p, s in planted_keys if s in log]
    assert not leaked, f"{door} -> {model}: reached the provider: {leaked}"


@pytest.mark.parametrize("door", DOORS)
def test_pii_in_a_text_field_is_redacted_and_in_a_name_refuses(
    gateway: Gateway, emulator: EmulatorServer, door: str
) -> None:
    _, full, table = DOORS[door]
    body = for_model(full, "gpt-emu")
    checked = {Kind.TEXT: 0, Kind.NAME: 0}
    for path, is_key in string_fields(body):
        where = normalised(path)
        kind = table[where]
        if kind not in checked:
            continue
        if is_key and not where.startswith(TEXT_DOCUMENTS):
            kind = Kind.NAME  # a schema's property names are names
        marker, value = tag(), email()
        response = send(gateway, door, planted(body, path, is_key, f"{marker} {value}"))
        assert value not in received(emulator), where
        if kind is Kind.TEXT:
            assert response.status_code == 200, (where, response.text)
            (forwarded,) = upstream_requests(emulator, marker)
            assert "<EMAIL_REDACTED>" in json.dumps(forwarded), where
        else:  # a name cannot carry a marker
            assert response.status_code == 400, (where, response.text)
            assert "dlp_blocked" in response.text, where
        checked[kind] += 1
    assert checked[Kind.TEXT] > 0
