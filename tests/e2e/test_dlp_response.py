"""DLP on the way back: reversible tokens restored for the authorised, secrets kept from everyone.

Two gateways, both with ``DLP_OPERATOR=token`` and the policy's object decision
(``OPA_POLICY_PATH=/v1/data/llm/authz/decision``), which grants ``deanonymize``
to the admin role only:

    tokens      DLP_STREAM_HOLDBACK=0: each streamed chunk scanned alone
    holdback    DLP_STREAM_HOLDBACK=64: the last 64 characters held until scanned

The emulator is told (``[[emulate ...]]``) what to answer; a secret it must
answer with is written in the directive as JSON escapes, so the request itself
carries nothing DLP would block.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from llm_gateway.audit.records import digest
from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, directive
from tests.e2e.dlp_support import (
    AWS_KEY_ID,
    EMAIL,
    GITHUB_TOKEN,
    SSN,
    SSN_2,
    answer_with,
    ask,
    ask_stream,
    dlp_gateway,
    findings_of,
    pieces,
    tag,
    upstream_requests,
)

DECISION = {"OPA_POLICY_PATH": "/v1/data/llm/authz/decision", "DLP_OPERATOR": "token"}
# The emulator answers with the tokens the provider saw (vault.format_token: <LABEL_n>).
TOKENS_ANSWER = "Found <EMAIL_1> and <SSN_1>."
RESTORED_ANSWER = f"Found {EMAIL} and {SSN}."
# A stream whose chunks cut both tokens apart.
SPLIT_TOKENS = ["Found <EM", "AIL_", "1> and <", "SSN_1", ">."]


@pytest.fixture(scope="module")
def tokens_gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with dlp_gateway(tmp_path_factory, emulator, "dlp-tokens", DECISION) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def holdback_gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    env = {**DECISION, "DLP_STREAM_HOLDBACK": "64"}
    with dlp_gateway(tmp_path_factory, emulator, "dlp-holdback", env) as gateway:
        yield gateway


@pytest.fixture(params=["tokens", "holdback"])
def any_gw(request: pytest.FixtureRequest) -> Gateway:
    gateway: Gateway = request.getfixturevalue(f"{request.param}_gw")
    return gateway


def admin(gw: Gateway, user: str = "root") -> str:
    return gw.token(user, role="admin")  # tier premium, like every harness token


def premium(gw: Gateway, user: str = "bob") -> str:
    return gw.token(user)  # role user, tier premium: no deanonymize


def conversation() -> dict[str, str]:
    return {"X-Conversation-Id": f"conv-{uuid.uuid4().hex}"}


def sent_text(sent: dict[str, Any]) -> str:
    return json.dumps(sent["body"], ensure_ascii=False)


# --- 4. reversible tokens in JSON answers ---------------------------------------------


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_admin_gets_the_original_values_back_in_a_json_answer(
    tokens_gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    prompt = directive(f"{marker} mail {EMAIL} ssn {SSN}", reply=TOKENS_ANSWER)
    reply = ask(tokens_gw, door, prompt, token=admin(tokens_gw))
    assert reply.status == 200, reply.body
    assert reply.text == RESTORED_ANSWER

    [sent] = upstream_requests(emulator, marker)
    assert f"{marker} mail <EMAIL_1> ssn <SSN_1>" in sent_text(sent)
    assert EMAIL not in sent_text(sent)
    assert SSN not in sent_text(sent)
    row = tokens_gw.audit_row(reply.request_id)
    assert row.dlp_action == "redact"
    assert findings_of(row) == [
        {"entity": "EMAIL_ADDRESS", "direction": "request", "count": 1, "action": "redact"},
        {"entity": "US_SSN", "direction": "request", "count": 1, "action": "redact"},
    ]


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_premium_user_gets_the_tokens_in_a_json_answer(
    tokens_gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    prompt = directive(f"{marker} mail {EMAIL} ssn {SSN}", reply=TOKENS_ANSWER)
    reply = ask(tokens_gw, door, prompt, token=premium(tokens_gw))
    assert reply.status == 200, reply.body
    assert reply.text == TOKENS_ANSWER
    assert EMAIL not in reply.body
    assert SSN not in reply.body
    [sent] = upstream_requests(emulator, marker)
    assert "<EMAIL_1>" in sent_text(sent)


# --- 4. reversible tokens in streams whose chunks split them --------------------------


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_admin_gets_the_original_values_in_a_stream_that_splits_tokens(
    any_gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    prompt = directive(f"{marker} mail {EMAIL} ssn {SSN}", chunks=SPLIT_TOKENS)
    reply = ask_stream(any_gw, door, prompt, token=admin(any_gw))
    assert reply.text == RESTORED_ANSWER, reply.chunks
    assert not any("<" in chunk for chunk in reply.chunks), reply.chunks  # no token shard leaks
    assert reply.finish in {"stop", "end_turn", "done"}
    [sent] = upstream_requests(emulator, marker)
    assert EMAIL not in sent_text(sent)


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_premium_user_gets_the_tokens_in_a_stream_that_splits_them(
    any_gw: Gateway, door: str
) -> None:
    prompt = directive(f"{tag()} mail {EMAIL} ssn {SSN}", chunks=SPLIT_TOKENS)
    reply = ask_stream(any_gw, door, prompt, token=premium(any_gw))
    assert reply.text == TOKENS_ANSWER, reply.chunks
    assert EMAIL not in reply.text
    assert SSN not in reply.text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_audit_digests_the_answer_with_tokens_never_the_restored_values(
    tokens_gw: Gateway, stream: bool
) -> None:
    """The audit row keeps a SHA-256 of the answer: of the tokenised one, because a bare
    hash of a short text around an SSN is a lookup away from the SSN."""
    token = admin(tokens_gw)
    if stream:
        prompt = directive(f"{tag()} mail {EMAIL} ssn {SSN}", chunks=SPLIT_TOKENS)
        streamed = ask_stream(tokens_gw, "openai", prompt, token=token)
        assert streamed.text == RESTORED_ANSWER
        request_id = streamed.request_id
    else:
        prompt = directive(f"{tag()} mail {EMAIL} ssn {SSN}", reply=TOKENS_ANSWER)
        reply = ask(tokens_gw, "openai", prompt, token=token)
        assert reply.text == RESTORED_ANSWER
        request_id = reply.request_id
    row = tokens_gw.audit_row(request_id)
    assert (row.response_sha256, row.response_chars) == digest([TOKENS_ANSWER])
    assert row.response_sha256 != digest([RESTORED_ANSWER])[0]


SEND_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "send",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_admin_gets_the_original_values_in_tool_call_arguments(
    tokens_gw: Gateway, stream: bool
) -> None:
    prompt = directive(
        f"{tag()} write to {EMAIL}", tool_calls=[{"name": "send", "arguments": {"to": "<EMAIL_1>"}}]
    )
    client = tokens_gw.openai(admin(tokens_gw))
    messages: Any = [{"role": "user", "content": prompt}]
    if stream:
        arguments = "".join(
            call.function.arguments or ""
            for chunk in client.chat.completions.create(
                model="gpt-emu", messages=messages, tools=[SEND_TOOL], stream=True
            )
            for choice in chunk.choices
            for call in choice.delta.tool_calls or []
            if call.function is not None
        )
    else:
        completion = client.chat.completions.create(
            model="gpt-emu", messages=messages, tools=[SEND_TOOL]
        )
        [call] = completion.choices[0].message.tool_calls or []
        assert call.type == "function"
        arguments = call.function.arguments
    assert json.loads(arguments) == {"to": EMAIL}


# --- 4. one conversation, one set of tokens ---------------------------------------------


def test_same_value_gets_the_same_token_across_requests_of_one_conversation(
    tokens_gw: Gateway, emulator: EmulatorServer
) -> None:
    headers = conversation()
    token = admin(tokens_gw)
    first, second = tag(), tag()
    reply = ask(tokens_gw, "openai", f"{first} ssn {SSN}", token=token, headers=headers)
    assert reply.text == f"Echo: {first} ssn {SSN}"
    reply = ask(
        tokens_gw, "openai", f"{second} ssn {SSN_2} then {SSN}", token=token, headers=headers
    )
    assert reply.text == f"Echo: {second} ssn {SSN_2} then {SSN}"  # both restored
    [sent_first] = upstream_requests(emulator, first)
    [sent_second] = upstream_requests(emulator, second)
    assert f"{first} ssn <SSN_1>" in sent_text(sent_first)
    assert f"{second} ssn <SSN_2> then <SSN_1>" in sent_text(sent_second)


def test_a_token_from_an_earlier_request_is_restored_later_in_the_conversation(
    tokens_gw: Gateway,
) -> None:
    headers = conversation()
    token = admin(tokens_gw)
    first = ask(tokens_gw, "openai", f"{tag()} mail {EMAIL}", token=token, headers=headers)
    assert first.status == 200
    later = directive(f"{tag()} what was it?", reply="It was <EMAIL_1>.")
    reply = ask(tokens_gw, "anthropic", later, token=token, headers=headers)
    assert reply.text == f"It was {EMAIL}."


def restored_for_the_owner(gw: Gateway, token: str, headers: dict[str, str]) -> None:
    """The positive control of an isolation test: the owner does get the value back."""
    probe = directive(f"{tag()} hello", reply="<SSN_1>")
    assert ask(gw, "openai", probe, token=token, headers=headers).text == SSN


def test_conversations_do_not_see_each_others_tokens(
    tokens_gw: Gateway, emulator: EmulatorServer
) -> None:
    token = admin(tokens_gw)
    owner = conversation()
    ask(tokens_gw, "openai", f"{tag()} ssn {SSN}", token=token, headers=owner)
    restored_for_the_owner(tokens_gw, token, owner)

    # another conversation of the same user: <SSN_1> means nothing there...
    probe = directive(f"{tag()} hello", reply="<SSN_1> <EMAIL_1>")
    elsewhere = ask(tokens_gw, "openai", probe, token=token, headers=conversation())
    assert elsewhere.text == "<SSN_1> <EMAIL_1>"
    assert SSN not in elsewhere.body
    # ...nor without any conversation id (each request is then a conversation of its own)
    alone = ask(tokens_gw, "openai", probe, token=token)
    assert alone.text == "<SSN_1> <EMAIL_1>"

    # and its numbering starts afresh, for its own values
    marker = tag()
    other = ask(tokens_gw, "openai", f"{marker} ssn {SSN_2}", token=token, headers=conversation())
    assert other.text == f"Echo: {marker} ssn {SSN_2}"
    [sent] = upstream_requests(emulator, marker)
    assert f"{marker} ssn <SSN_1>" in sent_text(sent)


def test_another_user_with_the_same_conversation_id_does_not_get_the_values(
    tokens_gw: Gateway,
) -> None:
    headers = conversation()
    alice = admin(tokens_gw, "alice")
    ask(tokens_gw, "openai", f"{tag()} ssn {SSN}", token=alice, headers=headers)
    restored_for_the_owner(tokens_gw, alice, headers)
    probe = directive(f"{tag()} hello", reply="<SSN_1>")
    reply = ask(tokens_gw, "openai", probe, token=admin(tokens_gw, "mallory"), headers=headers)
    assert reply.text == "<SSN_1>"
    assert SSN not in reply.body


def test_conversation_id_cannot_reach_across_users_whose_ids_share_a_prefix(
    tokens_gw: Gateway,
) -> None:
    """The vault is namespaced by tenant, user and conversation. Joined with ':' and no
    escaping, user 'urn:user' with conversation 'alice:c1' names the same vault as user
    'urn:user:alice' with conversation 'c1', and reads her values."""
    conv = f"c{uuid.uuid4().hex[:8]}"
    victim = admin(tokens_gw, "urn:user:alice")
    ask(
        tokens_gw, "openai", f"{tag()} ssn {SSN}", token=victim, headers={"X-Conversation-Id": conv}
    )
    restored_for_the_owner(tokens_gw, victim, {"X-Conversation-Id": conv})
    attacker = admin(tokens_gw, "urn:user")
    probe = directive(f"{tag()} hello", reply="<SSN_1>")
    reply = ask(
        tokens_gw, "openai", probe, token=attacker, headers={"X-Conversation-Id": f"alice:{conv}"}
    )
    assert reply.status == 200
    assert SSN not in reply.body, "another user's SSN was restored from her vault"
    assert reply.text == "<SSN_1>"


# --- 5. a secret in the model's answer ------------------------------------------------

SECRETS = {
    "github_token": (GITHUB_TOKEN, "GITHUB_TOKEN"),
    "aws_key_id": (AWS_KEY_ID, "AWS_ACCESS_KEY"),
}
#: What a content-filtered answer says in each door's own words.
FILTERED = {"openai": "content_filter", "anthropic": "refusal", "native": None}


def split_secret(secret: str) -> list[str]:
    """Chunks that cut the secret in three, none holding 8 of its characters in a row...
    except what DLP must catch once the pieces meet."""
    third = len(secret) // 3
    return [
        "Here is ",
        "the key: " + secret[:third],
        secret[third : 2 * third],
        secret[2 * third :],
        " use it",
        " wisely.",
    ]


def assert_secret_absent(secret: str, *texts: str) -> None:
    for text in texts:
        leaked = [p for p in pieces(secret) if p in text]
        assert not leaked, f"pieces of the secret reached the client: {leaked} in {text!r}"


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
@pytest.mark.parametrize("secret_name", list(SECRETS))
def test_secret_in_a_json_answer_is_withheld(
    holdback_gw: Gateway, door: str, secret_name: str
) -> None:
    secret, entity = SECRETS[secret_name]
    prompt = answer_with(hide=(secret,), reply=f"Here is the key: {secret} use it wisely.")
    reply = ask(holdback_gw, door, prompt)
    assert reply.status == 200, reply.body
    assert reply.text == ""
    assert reply.finish == FILTERED[door]
    assert_secret_absent(secret, reply.body)
    if door == "native":
        assert reply.data["metadata"]["pii_detected"] is True
        assert reply.data["metadata"]["pii_entities"] == [entity]

    row = holdback_gw.audit_row(reply.request_id)
    assert row.dlp_action == "block"
    assert findings_of(row) == [
        {"entity": entity, "direction": "response", "count": 1, "action": "block"}
    ]


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
@pytest.mark.parametrize("secret_name", list(SECRETS))
def test_secret_split_across_stream_chunks_never_reaches_the_client(
    holdback_gw: Gateway, door: str, secret_name: str
) -> None:
    secret, _ = SECRETS[secret_name]
    prompt = answer_with(hide=(secret,), chunks=split_secret(secret))
    reply = ask_stream(holdback_gw, door, prompt)
    assert_secret_absent(secret, *reply.chunks, reply.text, reply.raw)
    assert "use it wisely" not in reply.text  # nothing after the secret either
    assert reply.finish == (FILTERED[door] or "done")


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_secret_caught_in_a_stream_is_recorded_in_the_audit_row(
    holdback_gw: Gateway, door: str
) -> None:
    prompt = answer_with(hide=(GITHUB_TOKEN,), chunks=split_secret(GITHUB_TOKEN))
    reply = ask_stream(holdback_gw, door, prompt)
    assert_secret_absent(GITHUB_TOKEN, reply.text)
    row = holdback_gw.audit_row(reply.request_id)
    assert row.stream is True
    assert row.dlp_action == "block"
    assert findings_of(row) == [
        {"entity": "GITHUB_TOKEN", "direction": "response", "count": 1, "action": "block"}
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_secret_in_tool_call_arguments_never_reaches_the_client(
    holdback_gw: Gateway, stream: bool
) -> None:
    tool: dict[str, Any] = {
        "type": "function",
        "function": {"name": "save", "parameters": {"type": "object"}},
    }
    prompt = answer_with(
        hide=(GITHUB_TOKEN,), tool_calls=[{"name": "save", "arguments": {"token": GITHUB_TOKEN}}]
    )
    with holdback_gw.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {holdback_gw.token()}"},
            json={
                "model": "gpt-emu",
                "messages": [{"role": "user", "content": prompt}],
                "tools": [tool],
                "stream": stream,
            },
        )
    assert response.status_code == 200
    assert_secret_absent(GITHUB_TOKEN, response.text)
    assert '"content_filter"' in response.text


def test_ssn_in_a_json_answer_is_redacted(holdback_gw: Gateway) -> None:
    prompt = answer_with(hide=(SSN,), reply=f"Your SSN is {SSN}, noted.")
    reply = ask(holdback_gw, "openai", prompt)
    assert reply.text == "Your SSN is <SSN_REDACTED>, noted."
    assert reply.finish == "stop"
    row = holdback_gw.audit_row(reply.request_id)
    assert row.dlp_action == "redact"
    assert findings_of(row) == [
        {"entity": "US_SSN", "direction": "response", "count": 1, "action": "redact"}
    ]


@pytest.mark.parametrize("door", ["openai", "anthropic"])
def test_ssn_split_across_stream_chunks_is_redacted(holdback_gw: Gateway, door: str) -> None:
    chunks = ["Your SSN is 536-2", "2-87", "26, noted", "."]
    prompt = answer_with(hide=(SSN,), chunks=chunks)
    reply = ask_stream(holdback_gw, door, prompt)
    assert reply.text == "Your SSN is <SSN_REDACTED>, noted."
    assert not any(digit_run in reply.text for digit_run in ("536", "8726", "22-8"))
    assert reply.finish in {"stop", "end_turn"}
