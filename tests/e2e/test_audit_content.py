"""What an audit row keeps of the prompt and the answer (``AUDIT_STORE_CONTENT``).

``digest`` (the default) keeps SHA-256 digests and lengths only; ``redacted``
also the request as the provider saw it (DLP applied) and the answer before DLP
restored anything, so a value DLP took out is nowhere in the row; ``none``
keeps neither text nor digests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway, directive
from tests.e2e.dlp_support import EMAIL, SSN, ask, ask_stream, dlp_gateway, tag
from tests.e2e.test_dlp_response import DECISION, TOKENS_ANSWER, admin


def _gateway(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer, content: str
) -> AbstractContextManager[Gateway]:
    env = {**DECISION, "AUDIT_STORE_CONTENT": content, "AUDIT_CONTENT_MAX_CHARS": "400"}
    return dlp_gateway(tmp_path_factory, emulator, f"content-{content}", env)


@pytest.fixture(scope="module")
def redacted(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with _gateway(tmp_path_factory, emulator, "redacted") as gateway:
        yield gateway


def _no_values(row: AuditLog) -> None:
    stored = json.dumps(
        {c.name: getattr(row, c.name) for c in AuditLog.__table__.columns}, default=str
    )
    assert EMAIL not in stored
    assert SSN not in stored


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_redacted_content_is_what_the_provider_saw_and_the_answer_before_restoring(
    redacted: Gateway, door: str
) -> None:
    marker = tag()
    prompt = directive(f"{marker} mail {EMAIL} ssn {SSN}", reply=TOKENS_ANSWER)
    reply = ask(redacted, door, prompt, system="be brief", token=admin(redacted))
    assert reply.status == 200, reply.body
    assert EMAIL in reply.text  # the admin got the value back; the row must not have it
    row = redacted.audit_row(reply.request_id)
    assert row.prompt_text is not None
    transcript = json.loads(row.prompt_text)
    assert transcript["system"] == "be brief"
    user = [m for m in transcript["messages"] if m["role"] == "user"]
    assert f"{marker} mail <EMAIL_1> ssn <SSN_1>" in user[-1]["text"]
    assert row.response_text == TOKENS_ANSWER
    assert row.prompt_sha256 is not None  # the digests are kept too
    assert row.response_chars == len(TOKENS_ANSWER)
    _no_values(row)


def test_a_streamed_answer_is_kept_as_it_was_before_restoring(redacted: Gateway) -> None:
    marker = tag()
    prompt = directive(f"{marker} mail {EMAIL}", reply=TOKENS_ANSWER)
    reply = ask_stream(redacted, "openai", prompt, token=admin(redacted))
    row = redacted.audit_row(reply.request_id)
    assert row.response_text == TOKENS_ANSWER
    _no_values(row)


def test_content_is_cut_to_its_budget(redacted: Gateway) -> None:
    reply = ask(redacted, "openai", directive("x" * 1000, reply="y" * 1000))
    assert reply.status == 200, reply.body
    row = redacted.audit_row(reply.request_id)
    assert row.prompt_text is not None
    texts = [m["text"] for m in json.loads(row.prompt_text)["messages"]]
    assert sum(len(t) for t in texts) == 400
    assert row.response_text == "y" * 400
    assert row.response_chars == 1000  # the digest is of the whole answer


def test_none_keeps_neither_text_nor_digests_and_digest_keeps_only_digests(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for content in ("none", "digest"):
        with _gateway(tmp_path_factory, emulator, content) as gateway:
            reply = ask(gateway, "openai", directive(f"{tag()} mail {EMAIL}", reply="ok"))
            assert reply.status == 200, reply.body
            row = gateway.audit_row(reply.request_id)
        assert (row.prompt_text, row.response_text) == (None, None)
        if content == "none":
            assert (row.prompt_sha256, row.response_sha256) == (None, None)
        else:
            assert row.prompt_sha256 is not None
            assert row.response_chars == 2
