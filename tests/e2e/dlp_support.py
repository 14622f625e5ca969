"""What the DLP end-to-end tests (``test_dlp_*.py``) share: values, gateways, and the doors.

Each front door is driven by its own official client: the OpenAI SDK
(``gpt-emu``), the Anthropic SDK (``claude-emu``) and httpx for the native API
(``ollama-emu``), so every provider adapter is crossed too. :func:`ask` and
:func:`ask_stream` hide the differences and return what the caller saw; the
emulator's request log (:func:`upstream_requests`) says what the provider saw.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from llm_gateway.emulators import EmulatorServer
from llm_gateway.emulators.behaviour import conceal
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import REPO, Gateway, start_gateway, stop_gateway

#: The specification's rules file: credit_card (redact), api_key (block), internal_ip (alert).
SPEC_RULES = REPO / "config" / "dlp_rules.yaml"

# Values that the detectors accept. 123-45-6789 would not do: it is refused as a
# published example SSN, so a test using it would prove nothing.
SSN = "536-22-8726"
SSN_2 = "412-67-3090"
EMAIL = "jane.roe@example.org"
# The spec's api_key rule wants 32+ characters after "sk-"; the built-in OpenAI
# rule wants exactly 48, so this key is the spec rule's alone.
API_KEY = "sk-Q7w9E2r4T6y8U1i3O5p7A9s2D4f6G8h1"
GITHUB_TOKEN = "ghp_Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4"
AWS_KEY_ID = "AKIAZ7Q3M4N5P6R2T8XW"

DOORS = ("openai", "anthropic", "native")
#: The model each door calls: one provider adapter per door.
DOOR_MODEL = {"openai": "gpt-emu", "anthropic": "claude-emu", "native": "ollama-emu"}


def tag() -> str:
    """A one-word marker that finds a test's requests in the emulator's shared log."""
    return f"t{uuid.uuid4().hex[:12]}"


def pieces(value: str, size: int = 8) -> list[str]:
    """Every ``size``-character piece of ``value``: none may reach the caller."""
    return [value[i : i + size] for i in range(len(value) - size + 1)]


def concealed(value: str) -> str:
    """``value`` as the emulator can read it and the gateway's DLP cannot: base64 one layer
    deeper than DLP decodes (the gateway now reads \\uXXXX escapes and base64, #16)."""
    return conceal(value)


def answer_with(text: str = "hi", *, hide: tuple[str, ...] = (), **keys: Any) -> str:
    """A prompt telling the emulator how to answer, like ``conftest.directive``, with the
    values in ``hide`` concealed so that the request itself carries no secret
    (the gateway would block it before the model could answer with it)."""
    body = json.dumps(keys)
    for value in hide:
        body = body.replace(value, concealed(value))
    return f"{text} [[emulate {body}]]"


def upstream_requests(emulator: EmulatorServer, marker: str) -> list[dict[str, Any]]:
    """What the provider received for the requests whose body mentions ``marker``."""
    log = httpx.get(f"{emulator.base_url}/_emulator/requests", timeout=10).json()
    return [r for r in log if marker in json.dumps(r["body"], ensure_ascii=False)]


def findings_of(row: AuditLog) -> list[dict[str, Any]]:
    """The audit row's dlp_findings, decoded (empty when DLP found nothing)."""
    return json.loads(row.dlp_findings) if row.dlp_findings else []


def log_records(gateway: Gateway) -> list[dict[str, Any]]:
    """The gateway's JSON log lines, decoded."""
    records = []
    for line in gateway.logs().splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


# --- gateways --------------------------------------------------------------------


@contextmanager
def dlp_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    emulator: EmulatorServer,
    name: str,
    env: dict[str, str] | None = None,
    *,
    rules: Path | None = SPEC_RULES,
    access: str | None = None,
) -> Iterator[Gateway]:
    """A gateway of its own, with ``rules`` as CONFIG_DIR/dlp_rules.yaml (None: built-ins only)
    and ``access`` as the policy's tiers (None: the shipped test tiers)."""
    tmp: Path = tmp_path_factory.mktemp(name)
    if rules is not None:
        (tmp / "config").mkdir()
        shutil.copy(rules, tmp / "config" / "dlp_rules.yaml")
    database = f"sqlite:///{tmp}/data/gateway.db"
    if access is None:
        gateway = start_gateway(tmp, emulator.base_url, database, env)
    else:
        gateway = start_gateway(tmp, emulator.base_url, database, env, access=access)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


# --- the doors -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One JSON answer (or refusal) as the caller saw it."""

    status: int
    request_id: str
    body: str  # the raw response body, for leak checks
    text: str = ""  # the answer's text
    finish: str | None = None  # finish_reason (OpenAI), stop_reason (Anthropic); None (native)
    data: Any = None  # the decoded body

    def error(self, door: str) -> dict[str, Any]:
        """The error object of a refusal, in the door's own format."""
        if door == "anthropic":
            assert self.data["type"] == "error", self.data
            return dict(self.data["error"])
        assert set(self.data) == {"error"}, self.data
        return dict(self.data["error"])


@dataclass
class StreamReply:
    """One streamed answer: the text deltas exactly as the client received them."""

    request_id: str
    chunks: list[str] = field(default_factory=list)
    finish: str | None = None
    raw: str = ""  # native only: the whole event stream

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def _messages(prompt: str, system: str | None) -> list[ChatCompletionMessageParam]:
    """The chat messages of the OpenAI door, which the native API accepts as they are."""
    messages: list[ChatCompletionMessageParam] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    return messages


def _anthropic_messages(prompt: str) -> list[MessageParam]:
    """The Anthropic door's messages: the system prompt is a parameter of its own there."""
    return [{"role": "user", "content": prompt}]


def _refused(response: httpx.Response | httpx2.Response) -> Reply:
    """A refusal as a Reply; the SDKs' responses are httpx2's, the native door's httpx's."""
    return Reply(
        status=response.status_code,
        request_id=response.headers["x-request-id"],
        body=response.text,
        data=response.json(),
    )


def ask(
    gateway: Gateway,
    door: str,
    prompt: str,
    *,
    system: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    model: str | None = None,
) -> Reply:
    """Send one prompt through ``door`` with its own client; a refusal is returned, not raised."""
    model = model or DOOR_MODEL[door]
    if door == "openai":
        client = gateway.openai(token)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=_messages(prompt, system), extra_headers=headers
            )
        except openai.APIStatusError as exc:
            return _refused(exc.response)
        completion = raw.parse()
        choice = completion.choices[0]
        return Reply(
            raw.status_code, raw.headers["x-request-id"], raw.text,
            choice.message.content or "", choice.finish_reason, json.loads(raw.text),
        )  # fmt: skip
    if door == "anthropic":
        sdk = gateway.anthropic(token)
        try:
            answer = sdk.messages.with_raw_response.create(
                model=model,
                max_tokens=256,
                messages=_anthropic_messages(prompt),
                extra_headers=headers,
                system=system or anthropic.omit,
            )
        except anthropic.APIStatusError as exc:
            return _refused(exc.response)
        message = answer.parse()
        text = "".join(block.text for block in message.content if block.type == "text")
        body = answer.text()
        return Reply(
            answer.status_code, answer.headers["x-request-id"], body,
            text, message.stop_reason, json.loads(body),
        )  # fmt: skip
    with gateway.http() as http:
        response = http.post(
            "/api/v1/chat",
            json={"model": model, "messages": _messages(prompt, system)},
            headers={"authorization": f"Bearer {token or gateway.token()}", **(headers or {})},
        )
    if response.status_code != 200:
        return _refused(response)
    data = response.json()
    return Reply(200, response.headers["x-request-id"], response.text, data["response"], None, data)


def ask_stream(
    gateway: Gateway,
    door: str,
    prompt: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    model: str | None = None,
) -> StreamReply:
    """Stream one answer through ``door``; the chunks are the text deltas the client got."""
    model = model or DOOR_MODEL[door]
    if door == "openai":
        return _stream_openai(gateway.openai(token), model, prompt, headers)
    if door == "anthropic":
        return _stream_anthropic(gateway.anthropic(token), model, prompt, headers)
    return _stream_native(gateway, model, prompt, token, headers)


def _stream_openai(
    client: openai.OpenAI, model: str, prompt: str, headers: dict[str, str] | None
) -> StreamReply:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=_messages(prompt, None), stream=True, extra_headers=headers
    )
    reply = StreamReply(raw.headers["x-request-id"])
    for chunk in raw.parse():
        for choice in chunk.choices:
            if choice.delta.content:
                reply.chunks.append(choice.delta.content)
            if choice.finish_reason is not None:
                reply.finish = choice.finish_reason
    return reply


def _stream_anthropic(
    client: anthropic.Anthropic, model: str, prompt: str, headers: dict[str, str] | None
) -> StreamReply:
    answer = client.messages.with_raw_response.create(
        model=model, max_tokens=256, messages=_anthropic_messages(prompt), stream=True,
        extra_headers=headers,
    )  # fmt: skip
    reply = StreamReply(answer.headers["x-request-id"])
    for event in answer.parse():
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            reply.chunks.append(event.delta.text)
        elif event.type == "message_delta":
            reply.finish = event.delta.stop_reason
    return reply


def _stream_native(
    gateway: Gateway, model: str, prompt: str, token: str | None, headers: dict[str, str] | None
) -> StreamReply:
    with gateway.http() as http:
        response = http.post(
            "/api/v1/chat",
            json={"model": model, "messages": _messages(prompt, None), "stream": True},
            headers={"authorization": f"Bearer {token or gateway.token()}", **(headers or {})},
        )
    assert response.status_code == 200, response.text
    reply = StreamReply(response.headers["x-request-id"], raw=response.text)
    for name, data in sse_events(response.text):
        if name == "delta":
            reply.chunks.append(data["text"])
        elif name == "done":
            reply.finish = "done"
    return reply


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, decoded data) of each server-sent event of the native stream."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip().splitlines()
        if not any(line.startswith("data:") for line in lines):
            continue
        name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "message")
        data = "\n".join(ln[5:].strip() for ln in lines if ln.startswith("data:"))
        events.append((name, json.loads(data)))
    return events
