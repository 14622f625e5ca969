"""The specification's EC2 dialogue through the real server and the official SDKs.

An emulated model answers "Delete all stopped EC2 instances" with a
``terminate_instances`` tool call for 7 instance ids; the gateway withholds
it, shows the challenge, lists the scope on ``show details``, refuses a
confirmation inside the cooldown, and releases exactly the original tool
call on the right phrase. Every step has its audit row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import (
    PRICING_YAML,
    Gateway,
    directive,
    routing_yaml,
    start_gateway,
    stop_gateway,
    wait_for,
)

COOLDOWN_S = 0.5
GUARDRAILS = f"""
guardrails:
  hitl:
    enabled: true
    confirmation_required:
      - pattern: "delete|remove|terminate|destroy"
        environments: ["production", "staging"]
        cooldown_seconds: {COOLDOWN_S}
      - pattern: "iam|security-group|secret"
        always: true
        require_mfa: true
      - pattern: "scale|resize"
        approvers: [ops]
      - pattern: "drop"
        environments: ["staging"]
      - pattern: "purge"
        expires_seconds: 0.3
"""
IDS = [f"i-{n:08x}" for n in range(7)]
TERMINATE: Any = {
    "type": "function",
    "function": {
        "name": "terminate_instances",
        "description": "Terminate EC2 instances",
        "parameters": {
            "type": "object",
            "properties": {"instance_ids": {"type": "array", "items": {"type": "string"}}},
        },
    },
}
ASK = directive(
    "Delete all stopped EC2 instances",
    tool_calls=[{"name": "terminate_instances", "arguments": {"instance_ids": IDS}}],
)
PHRASE = "confirm delete 7 instances"


@pytest.fixture(scope="module")
def guarded(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("guarded")
    config = tmp / "own-config"
    config.mkdir()
    (config / "routing_policies.yaml").write_text(routing_yaml(emulator.base_url))
    (config / "pricing.yaml").write_text(PRICING_YAML)
    (config / "guardrails.yaml").write_text(GUARDRAILS)
    env = {
        "CONFIG_DIR": str(config), "ENVIRONMENT": "production",
        "CONFIRMATION_EXPIRY_SWEEP_SECONDS": "0.1",
    }  # fmt: skip
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gw.db", env)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


class Dialogue:
    """One user's conversation through the OpenAI front door, as raw JSON."""

    def __init__(self, gateway: Gateway, *, conversation: bool = True, stream: bool = False):
        self.gateway = gateway
        self.token = gateway.token(f"u-{uuid.uuid4().hex[:8]}", tenant="acme")
        self.headers = {"authorization": f"Bearer {self.token}"}
        if conversation:
            self.headers["x-conversation-id"] = uuid.uuid4().hex
        self.stream = stream
        self.messages: list[dict[str, Any]] = []

    def say(self, text: str) -> httpx.Response:
        self.messages.append({"role": "user", "content": text})
        body = {"model": "gpt-emu", "messages": self.messages, "tools": [TERMINATE],
                "stream": self.stream}  # fmt: skip
        with self.gateway.http() as http:
            answer = http.post("/v1/chat/completions", json=body, headers=self.headers)
        assert answer.status_code == 200, answer.text
        message = answer.json()["choices"][0]["message"] if not self.stream else {}
        if message.get("content"):  # a released tool call is the client's to run, not history
            self.messages.append({"role": "assistant", "content": message["content"]})
        return answer

    def event(self, answer: httpx.Response) -> str | None:
        return self.gateway.audit_row(answer.headers["x-request-id"]).confirmation


def _content(answer: httpx.Response) -> str:
    return answer.json()["choices"][0]["message"]["content"] or ""


def test_the_ec2_dialogue_holds_the_tool_call_until_the_phrase(guarded: Gateway) -> None:
    talk = Dialogue(guarded)
    challenge = talk.say(ASK)
    body = challenge.json()
    text = _content(challenge)
    assert "[STOP] This action requires confirmation." in text
    assert "Environment: production (HIGH RISK)" in text
    assert f"Type '{PHRASE}' to proceed" in text
    assert all(i in text for i in IDS[:3])
    assert "... [4 more]" in text
    assert IDS[6] not in text
    assert not body["choices"][0]["message"].get("tool_calls")  # withheld
    confirmation = body["confirmation"]
    assert challenge.headers["x-confirmation-id"] == confirmation["id"]
    assert (confirmation["phrase"], confirmation["scope"]) == (PHRASE, IDS)
    assert (confirmation["environment"], confirmation["risk"]) == ("production", "high")
    assert talk.event(challenge) == f"{confirmation['id']}:challenged"

    details = talk.say("show details")
    assert all(i in _content(details) for i in IDS)
    assert talk.event(details) == f"{confirmation['id']}:details"

    too_soon = talk.say(PHRASE)  # inside the cooldown
    assert "Too soon" in _content(too_soon)
    assert talk.event(too_soon) == f"{confirmation['id']}:refused"

    other = talk.say("yes please go ahead")
    assert "Still waiting for confirmation" in _content(other)

    time.sleep(COOLDOWN_S)  # the cooldown is the rule's: wait it out
    released = talk.say("  Confirm   DELETE 7 instances. ")
    message = released.json()["choices"][0]["message"]
    [call] = message["tool_calls"]
    assert call["function"]["name"] == "terminate_instances"
    assert json.loads(call["function"]["arguments"]) == {"instance_ids": IDS}
    assert released.json()["choices"][0]["finish_reason"] == "tool_calls"
    row = guarded.audit_row(released.headers["x-request-id"])
    assert (row.confirmation, row.tokens_in, row.cost_usd) == (
        f"{confirmation['id']}:confirmed", 0, 0.0,
    )  # fmt: skip
    again = talk.say(PHRASE)  # no replay: nothing is pending any more, the model answers
    assert not again.json()["choices"][0]["message"].get("tool_calls")


def test_without_a_conversation_id_the_history_names_the_confirmation(guarded: Gateway) -> None:
    talk = Dialogue(guarded, conversation=False)
    confirmation = talk.say(ASK).json()["confirmation"]
    time.sleep(COOLDOWN_S)
    released = talk.say(PHRASE)
    assert released.json()["choices"][0]["message"]["tool_calls"]
    assert talk.event(released) == f"{confirmation['id']}:confirmed"


def test_another_user_cannot_answer_it_and_cancel_discards_it(guarded: Gateway) -> None:
    talk = Dialogue(guarded)
    confirmation = talk.say(ASK).json()["confirmation"]
    stranger = Dialogue(guarded, conversation=False)
    stranger.messages = list(talk.messages)  # the same history, another caller
    time.sleep(COOLDOWN_S)
    theirs = stranger.say(PHRASE)
    assert not theirs.json()["choices"][0]["message"].get("tool_calls")
    assert stranger.event(theirs) is None  # not theirs to answer: it went to the model
    cancelled = talk.say("cancel")
    assert "Cancelled" in _content(cancelled)
    assert talk.event(cancelled) == f"{confirmation['id']}:cancelled"
    after = talk.say(PHRASE)
    assert not after.json()["choices"][0]["message"].get("tool_calls")


def test_a_streamed_answer_is_held_and_released_as_a_stream(guarded: Gateway) -> None:
    client = guarded.openai(guarded.token(f"u-{uuid.uuid4().hex[:8]}"))
    conversation = {"x-conversation-id": uuid.uuid4().hex}
    messages: list[Any] = [{"role": "user", "content": ASK}]
    chunks = list(client.chat.completions.create(
        model="gpt-emu", messages=messages, tools=[TERMINATE], stream=True,
        extra_headers=conversation,
    ))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert PHRASE in text
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    time.sleep(COOLDOWN_S)
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": PHRASE}]
    released = list(client.chat.completions.create(
        model="gpt-emu", messages=messages, tools=[TERMINATE], stream=True,
        extra_headers=conversation,
    ))  # fmt: skip
    deltas = [d for c in released if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    functions = [d.function for d in deltas if d.function is not None]
    assert functions[0].name == "terminate_instances"
    arguments = "".join(f.arguments or "" for f in functions)
    assert json.loads(arguments) == {"instance_ids": IDS}


def test_the_anthropic_door_holds_and_releases_the_same(guarded: Gateway) -> None:
    client = guarded.anthropic(guarded.token(f"u-{uuid.uuid4().hex[:8]}"))
    conversation = {"x-conversation-id": uuid.uuid4().hex}
    tool: Any = {
        "name": "terminate_instances",
        "description": "Terminate EC2 instances",
        "input_schema": TERMINATE["function"]["parameters"],
    }
    messages: list[Any] = [{"role": "user", "content": ASK}]
    raw = client.messages.with_raw_response.create(
        model="claude-emu", max_tokens=100, messages=messages, tools=[tool],
        extra_headers=conversation,
    )  # fmt: skip
    held = raw.parse()
    assert [b.type for b in held.content] == ["text"]
    text = held.content[0].text  # type: ignore[union-attr]
    assert PHRASE in text
    assert json.loads(raw.http_response.text)["confirmation"]["scope"] == IDS
    time.sleep(COOLDOWN_S)
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": PHRASE}]
    released = client.messages.create(
        model="claude-emu", max_tokens=100, messages=messages, tools=[tool],
        extra_headers=conversation,
    )  # fmt: skip
    [use] = [b for b in released.content if b.type == "tool_use"]
    assert (use.name, use.input) == ("terminate_instances", {"instance_ids": IDS})


def test_a_risky_prompt_without_tools_waits_and_then_goes_to_the_model(guarded: Gateway) -> None:
    talk = Dialogue(guarded)
    talk_body: Any = {
        "model": "gpt-emu",
        "messages": [{"role": "user", "content": "delete the bucket"}],
    }
    with guarded.http() as http:
        held = http.post("/v1/chat/completions", json=talk_body, headers=talk.headers)
    assert held.json()["confirmation"]["phrase"] == "confirm delete"
    time.sleep(COOLDOWN_S)
    talk_body["messages"] += [
        {"role": "assistant", "content": _content(held)},
        {"role": "user", "content": "confirm delete"},
    ]
    with guarded.http() as http:
        released = http.post("/v1/chat/completions", json=talk_body, headers=talk.headers)
    assert _content(released) == "Echo: delete the bucket"  # the held request, now answered


def _enroll(gateway: Gateway, user: str, tenant: str) -> pyotp.TOTP:
    """``llm-gateway mfa enroll``, on the gateway's own database and keys."""
    done = subprocess.run(
        [sys.executable, "-m", "llm_gateway.cli", "mfa", "enroll", "--user", user,
         "--tenant", tenant],
        env=gateway.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    secret, uri = done.stdout.split()
    assert uri.startswith("otpauth://totp/")
    return pyotp.TOTP(secret)


def _held_iam(gateway: Gateway, talk: Dialogue) -> tuple[Any, dict[str, Any]]:
    bare: Any = {
        "model": "gpt-emu",
        "messages": [{"role": "user", "content": "rotate the IAM keys"}],
    }
    with gateway.http() as http:
        challenged = http.post("/v1/chat/completions", json=bare, headers=talk.headers)
    bare["messages"].append({"role": "assistant", "content": _content(challenged)})
    return bare, challenged.json()["confirmation"]


def _reply(gateway: Gateway, talk: Dialogue, body: Any, text: str, **headers: str) -> str:
    body["messages"] = [*body["messages"][:2], {"role": "user", "content": text}]
    with gateway.http() as http:
        answer = http.post("/v1/chat/completions", json=body, headers={**talk.headers, **headers})
    return _content(answer)


def test_an_mfa_rule_wants_a_valid_code_and_takes_each_code_once(guarded: Gateway) -> None:
    talk = Dialogue(guarded)
    held = talk.say("rotate the IAM keys")  # tools are offered: the model answers, no tool call
    assert "confirmation" not in held.json()
    user = guarded.audit_row(held.headers["x-request-id"]).user_id
    assert user is not None
    totp = _enroll(guarded, user, "acme")
    body, confirmation = _held_iam(guarded, talk)
    assert confirmation["requires_mfa"] is True
    phrase = confirmation["phrase"]
    assert "MFA code" in _reply(guarded, talk, body, phrase)  # no code
    assert "MFA code" in _reply(guarded, talk, body, f"{phrase} 000000")  # a wrong one
    code = totp.now()
    assert _reply(guarded, talk, body, f"{phrase} {code}") == "Echo: rotate the IAM keys"
    confirmed = guarded.audit_rows(AuditLog.confirmation == f"{confirmation['id']}:confirmed+mfa")
    assert len(confirmed) == 1
    body, _ = _held_iam(guarded, talk)  # a second action, the same code
    assert "MFA code" in _reply(guarded, talk, body, phrase, **{"x-gateway-mfa": code})


# --- the confirmations API ---------------------------------------------------------------


def _api(gateway: Gateway, token: str, method: str, path: str, **body: object) -> httpx.Response:
    with gateway.http() as http:
        return http.request(
            method, f"/api/v1/confirmations{path}", json=body or None,
            headers={"authorization": f"Bearer {token}"},
        )  # fmt: skip


def test_the_api_lists_and_approves_and_the_next_message_gets_the_answer(
    guarded: Gateway,
) -> None:
    talk = Dialogue(guarded)
    confirmation = talk.say(ASK).json()["confirmation"]
    cid = confirmation["id"]
    listed = _api(guarded, talk.token, "GET", "").json()["data"]
    assert [c["id"] for c in listed] == [cid]
    assert _api(guarded, talk.token, "GET", f"/{cid}").json()["phrase"] == PHRASE
    neighbour = guarded.token("neighbour", tenant="acme")
    assert _api(guarded, neighbour, "GET", "").json()["data"] == []  # not theirs
    stranger = guarded.token("stranger", tenant="globex")
    assert _api(guarded, stranger, "GET", f"/{cid}").status_code == 404

    soon = _api(guarded, talk.token, "POST", f"/{cid}/confirm", phrase=PHRASE)
    assert (soon.status_code, soon.json()["error"]["code"]) == (400, "confirmation_too_soon")
    assert guarded.audit_row(soon.headers["x-request-id"]).confirmation == f"{cid}:api-refused"
    time.sleep(COOLDOWN_S)
    wrong = _api(
        guarded, talk.token, "POST", f"/{cid}/confirm", phrase="confirm delete 6 instances"
    )
    assert wrong.json()["error"]["code"] == "confirmation_phrase_mismatch"
    approved = _api(guarded, talk.token, "POST", f"/{cid}/confirm", phrase=PHRASE)
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    row = guarded.audit_row(approved.headers["x-request-id"])
    assert (row.endpoint, row.confirmation) == ("confirmation.approve", f"{cid}:api-approved")

    released = talk.say("thanks")  # any message now gets what was held
    assert released.json()["choices"][0]["message"]["tool_calls"]
    assert talk.event(released) == f"{cid}:confirmed"
    gone = _api(guarded, talk.token, "POST", f"/{cid}/confirm", phrase=PHRASE)
    assert gone.status_code == 404  # decided: no replay


def test_a_rule_with_approvers_needs_someone_else_with_the_role(guarded: Gateway) -> None:
    talk = Dialogue(guarded)
    bare: Any = {"model": "gpt-emu", "messages": [{"role": "user", "content": "scale the db"}]}
    with guarded.http() as http:
        held = http.post("/v1/chat/completions", json=bare, headers=talk.headers)
    cid = held.json()["confirmation"]["id"]
    phrase = held.json()["confirmation"]["phrase"]
    assert held.json()["confirmation"]["approvers"] == ["ops"]
    own = _api(guarded, talk.token, "POST", f"/{cid}/confirm", phrase=phrase)
    assert (own.status_code, own.json()["error"]["code"]) == (403, "confirmation_refused")
    ops = guarded.token("operator", role="ops", tenant="acme")
    assert [c["id"] for c in _api(guarded, ops, "GET", "").json()["data"]] == [cid]
    approved = _api(guarded, ops, "POST", f"/{cid}/confirm", phrase=phrase)
    assert approved.json()["status"] == "approved"
    bare["messages"] += [
        {"role": "assistant", "content": held.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "go on"},
    ]
    with guarded.http() as http:
        released = http.post("/v1/chat/completions", json=bare, headers=talk.headers)
    assert released.json()["choices"][0]["message"]["content"] == "Echo: scale the db"


def test_cancel_by_api_discards_it(guarded: Gateway) -> None:
    talk = Dialogue(guarded)
    cid = talk.say(ASK).json()["confirmation"]["id"]
    cancelled = _api(guarded, talk.token, "POST", f"/{cid}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    after = talk.say(PHRASE)
    assert not after.json()["choices"][0]["message"].get("tool_calls")


def _bare(gateway: Gateway, token: str, text: str) -> httpx.Response:
    body = {"model": "gpt-emu", "messages": [{"role": "user", "content": text}]}
    with gateway.http() as http:
        return http.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}
        )


def test_the_credentials_own_environment_makes_a_rule_apply(guarded: Gateway) -> None:
    """The gateway runs in production; a staging rule applies to a staging token only."""
    staging = guarded.token(f"u-{uuid.uuid4().hex[:8]}", environment="staging")
    held = _bare(guarded, staging, "drop the cache table")
    assert held.json()["confirmation"]["environment"] == "staging"
    assert "Environment: staging (MEDIUM RISK)" in _content(held)
    plain = _bare(guarded, guarded.token(f"u-{uuid.uuid4().hex[:8]}"), "drop the cache table")
    assert _content(plain) == "Echo: drop the cache table"


def test_an_unanswered_confirmation_expires_into_its_own_audit_event(guarded: Gateway) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    held = _bare(guarded, guarded.token(user, tenant="acme"), "purge the logs")
    cid = held.json()["confirmation"]["id"]
    expired = AuditLog.confirmation == f"{cid}:expired"
    assert wait_for(lambda: bool(guarded.audit_rows(expired)), timeout_s=30)
    [row] = guarded.audit_rows(expired)
    assert (row.endpoint, row.user_id, row.tenant, row.status) == (
        "confirmation.expire", user, "acme", 200,
    )  # fmt: skip


def test_the_policy_decides_who_else_may_approve(guarded: Gateway) -> None:
    """The confirmation is in the policy's input; the shipped policy lets administrators
    of the tenant approve another's, and nobody else."""
    talk = Dialogue(guarded)
    cid = talk.say(ASK).json()["confirmation"]["id"]
    neighbour = guarded.token("neighbour", tenant="acme")
    refused = _api(guarded, neighbour, "POST", f"/{cid}/confirm", phrase=PHRASE)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "policy_denied")
    row = guarded.audit_row(refused.headers["x-request-id"])
    assert (row.user_id, row.confirmation) == ("neighbour", f"{cid}:api-refused")
    assert _api(guarded, neighbour, "GET", f"/{cid}").status_code == 403
    admin = guarded.token("lead", role="admin", tenant="acme")
    assert cid in [c["id"] for c in _api(guarded, admin, "GET", "").json()["data"]]
    time.sleep(COOLDOWN_S)
    approved = _api(guarded, admin, "POST", f"/{cid}/confirm", phrase=PHRASE)
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    released = talk.say("go on")
    assert released.json()["choices"][0]["message"]["tool_calls"]
    elsewhere = guarded.token("lead", role="admin", tenant="globex")
    assert _api(guarded, elsewhere, "GET", "").json()["data"] == []
