"""Shared fixtures: one emulator per test session, driven by the official SDKs.

The server runs in its own thread (``start_in_thread``) so that synchronous SDK
clients can call it from the test thread; one server for the whole session
keeps the suite fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

import anthropic
import httpx
import openai
import pytest

from llm_gateway.emulators import EmulatorServer

API_KEY = "test-emulator-key"


class Directive(Protocol):
    def __call__(self, text: str = ..., **keys: Any) -> str: ...


def _directive(text: str = "hello world", **keys: Any) -> str:
    return f"{text} [[emulate {json.dumps(keys)}]]"


@pytest.fixture(scope="session")
def directive() -> Directive:
    """Builds a user message carrying an ``[[emulate ...]]`` directive after ``text``.

    A fixture rather than an import, so test modules need no import path to
    this file whatever pytest's import mode.
    """
    return _directive


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(api_key=API_KEY).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oai(emulator: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.base_url + "/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def claude(emulator: EmulatorServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emulator.base_url, api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.base_url, timeout=10.0) as client:
        yield client
