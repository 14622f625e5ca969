"""Type confusion: every field of every front door's body, given a value of every other JSON type.

A caller's mistake is a 400 with a stable code, never another exception (which
the server would turn into a 500 and a traceback in the log). The bodies below
use every field each door reads; each of their nodes, at any depth, is
replaced in turn by a value of each JSON type, and the result must either
parse, and then translate for every provider, or be refused with
``InvalidRequest``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from llm_gateway.api import anthropic as anthropic_door
from llm_gateway.api import native as native_door
from llm_gateway.api import openai as openai_door
from llm_gateway.chat import ChatRequest
from llm_gateway.config import Provider
from llm_gateway.errors import InvalidRequest
from llm_gateway.providers import ADAPTERS
from tests.api.bodies import ANTHROPIC_BODY, NATIVE_BODY, OPENAI_BODY
from tests.api.test_round_trips import deployment

REPLACEMENTS: tuple[Any, ...] = (None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"a": []})

Parser = Callable[[bytes], ChatRequest]
DOORS: dict[str, tuple[Parser, dict[str, Any]]] = {
    "openai": (openai_door.parse_request, OPENAI_BODY),
    "anthropic": (anthropic_door.parse_request, ANTHROPIC_BODY),
    "native": (native_door.parse_request, NATIVE_BODY),
}


def paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every node's path in a JSON document, the root's children first."""
    if not isinstance(node, dict | list):
        return
    children: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in children:
        yield (*path, key)
        yield from paths(child, (*path, key))


def replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


@pytest.mark.parametrize("door", DOORS)
def test_the_full_bodies_are_valid(door: str) -> None:
    parse, body = DOORS[door]
    chat = parse(orjson.dumps(body))
    assert chat.messages


@pytest.mark.parametrize("door", DOORS)
def test_every_field_of_every_type_is_a_400_or_accepted(door: str) -> None:
    parse, body = DOORS[door]
    accepted = refused = 0
    statuses: set[int] = set()
    for path in paths(body):
        for value in REPLACEMENTS:
            document = replaced(body, path, value)
            try:
                chat = parse(orjson.dumps(document))
            except InvalidRequest as exc:
                statuses.add(exc.status)
                refused += 1
                continue
            except Exception as exc:  # the bug this test exists for
                pytest.fail(f"{door} {list(path)} = {value!r}: {type(exc).__name__}: {exc}")
            for provider in Provider:
                try:
                    ADAPTERS[provider].build_request(deployment(provider), chat)
                except InvalidRequest:
                    continue
                except Exception as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                    pytest.fail(f"{door} {list(path)} = {value!r} -> {provider}: {failure}")
            accepted += 1
    assert statuses == {400}
    # Both happen: a string for a string is fine, a list for a string is not.
    assert accepted > 0
    assert refused > 0
