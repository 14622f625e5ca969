"""Typed errors, confirmations, grounding and retries, against a real gateway."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from llm_gateway_sdk import (
    AuthenticationError,
    ConfirmationNotFound,
    ConfirmationRequired,
    DlpBlocked,
    Gateway,
    GatewayError,
    InvalidRequest,
    PolicyDenied,
    RateLimited,
    UpstreamRateLimited,
)
from tests.e2e.conftest import Gateway as GatewayUnderTest
from tests.e2e.conftest import directive, frees_in

GITHUB_TOKEN = "ghp_Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4"


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def test_a_bad_credential_is_an_authentication_error(gw: GatewayUnderTest) -> None:
    with Gateway(gw.base_url, "not-a-token") as gateway, pytest.raises(AuthenticationError) as e:
        gateway.chat("gpt-emu", [{"role": "user", "content": "hi"}])
    assert (e.value.status, e.value.code) == (401, "malformed_token")
    assert e.value.request_id
    assert gw.audit_row(e.value.request_id).status == 401
    with Gateway(gw.base_url, "") as gateway, pytest.raises(AuthenticationError) as e:
        gateway.models()
    assert e.value.code == "missing_credentials"


def test_a_policy_denial_carries_its_reasons(gw: GatewayUnderTest) -> None:
    gateway = Gateway(gw.base_url, gw.token(user(), tier="free"))
    with gateway, pytest.raises(PolicyDenied) as e:
        gateway.chat("gpt-emu", [{"role": "user", "content": "hi"}])
    assert (e.value.status, e.value.code) == (403, "policy_denied")
    assert "reasons" in e.value.details  # the boolean rule gives none; an object rule would
    assert e.value.reasons == []
    assert gw.audit_row(e.value.request_id or "").status == 403


def test_a_blocked_secret_is_dlp_blocked_naming_the_rule(gw: GatewayUnderTest) -> None:
    with Gateway(gw.base_url, gw.token(user())) as gateway, pytest.raises(DlpBlocked) as e:
        gateway.chat("gpt-emu", [{"role": "user", "content": f"my token is {GITHUB_TOKEN}"}])
    assert (e.value.status, e.value.code) == (400, "dlp_blocked")
    assert isinstance(e.value, InvalidRequest)
    assert e.value.findings
    assert GITHUB_TOKEN not in str(e.value) + repr(e.value.details)


def test_an_invalid_request_names_its_field(gw: GatewayUnderTest) -> None:
    with Gateway(gw.base_url, gw.token(user())) as gateway, pytest.raises(InvalidRequest) as e:
        gateway.chat("gpt-emu", [{"role": "robot", "content": "hi"}])
    assert e.value.code == "invalid_role"
    assert e.value.message.startswith("messages[0].role:")


def test_the_providers_429_is_typed_and_retried_then_raised(gw: GatewayUnderTest) -> None:
    statuses: list[int] = []
    http = httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    gateway = Gateway(gw.base_url, gw.token(user()), max_retries=1, http_client=http)
    prompt = directive(status=429, retry_after=0)
    with gateway, pytest.raises(UpstreamRateLimited) as e:
        gateway.chat("gpt-emu", [{"role": "user", "content": prompt}])
    http.close()
    assert isinstance(e.value, RateLimited)
    assert (e.value.status, e.value.code) == (429, "upstream_rate_limited")
    assert statuses == [429, 429]  # one retry, then the error


# --- the gateway's own 429: retried after its Retry-After ------------------------------


def test_a_rate_limited_chat_is_retried_after_the_gateways_retry_after(
    gw: GatewayUnderTest,
) -> None:
    token = gw.token(user(), tier="trickle")  # one request a minute
    seen: list[tuple[int, float, httpx.Headers]] = []

    def hook(response: httpx.Response) -> None:
        seen.append((response.status_code, time.monotonic(), response.headers))

    http = httpx.Client(event_hooks={"response": [hook]})
    with Gateway(gw.base_url, token, max_retries=3, http_client=http) as gateway:
        gateway.chat("gpt-emu", [{"role": "user", "content": "one"}])
        undo = frees_in(gw, 1.2)
        try:
            answer = gateway.chat("gpt-emu", [{"role": "user", "content": "two"}])
        finally:
            undo()
    http.close()
    assert answer.content == "Echo: two"
    assert [status for status, _, _ in seen] == [200, 429, 200]
    (_, refused_at, headers), (_, retried_at, _) = seen[1], seen[2]
    waited_ms = int(headers["retry-after-ms"])
    assert 1000 <= waited_ms <= 1200
    assert retried_at - refused_at >= waited_ms / 1000  # as long as the gateway said


def test_a_retry_after_beyond_the_cap_is_raised_at_once(gw: GatewayUnderTest) -> None:
    token = gw.token(user(), tier="trickle")
    statuses: list[int] = []
    http = httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    with Gateway(gw.base_url, token, max_retries=3, max_retry_wait=5, http_client=http) as gw_:
        gw_.chat("gpt-emu", [{"role": "user", "content": "one"}])
        with pytest.raises(RateLimited) as e:
            gw_.chat("gpt-emu", [{"role": "user", "content": "two"}])
    http.close()
    assert statuses == [200, 429]  # a minute's wait: not retried
    assert (e.value.code, e.value.scope) == ("rate_limited", "user")
    assert e.value.retry_after is not None
    assert e.value.retry_after > 5


# --- confirmations -------------------------------------------------------------------


def test_the_confirmation_round_trip_through_the_api(gw: GatewayUnderTest) -> None:
    conversation = uuid.uuid4().hex
    messages = [{"role": "user", "content": "delete the bucket"}]
    with Gateway(gw.base_url, gw.token(user(), tenant="acme")) as gateway:
        held = gateway.chat("gpt-emu", messages, conversation_id=conversation)
        confirmation = held.confirmation
        assert confirmation is not None
        assert confirmation.phrase == "confirm delete"
        assert (confirmation.environment, confirmation.risk) == ("production", "high")
        assert "[STOP] This action requires confirmation." in held.content

        assert [c.id for c in gateway.confirmations()] == [confirmation.id]
        shown = gateway.confirmation(confirmation.id)
        assert (shown.phrase, shown.status) == ("confirm delete", "pending")
        with pytest.raises(InvalidRequest) as wrong:
            gateway.confirm(confirmation.id, "confirm nothing")
        assert wrong.value.code == "confirmation_phrase_mismatch"

        approved = gateway.confirm(confirmation.id, confirmation.phrase)
        assert approved.status == "approved"
        messages += [{"role": "assistant", "content": held.content},
                     {"role": "user", "content": "go on"}]  # fmt: skip
        released = gateway.chat("gpt-emu", messages, conversation_id=conversation)
        assert released.content == "Echo: delete the bucket"  # the held prompt, answered
        assert released.confirmation is None
        with pytest.raises(ConfirmationNotFound) as gone:
            gateway.confirm(confirmation.id, confirmation.phrase)
        assert (gone.value.status, gone.value.code) == (404, "confirmation_not_found")


def test_a_confirmation_in_the_conversation_and_cancel(gw: GatewayUnderTest) -> None:
    conversation = uuid.uuid4().hex
    with Gateway(gw.base_url, gw.token(user())) as gateway:
        with pytest.raises(ConfirmationRequired) as e:
            gateway.chat("gpt-emu", [{"role": "user", "content": "terminate the server"}],
                         conversation_id=conversation, raise_on_confirmation=True)  # fmt: skip
        confirmation = e.value.confirmation
        phrase = gateway.chat("gpt-emu", [{"role": "user", "content": confirmation.phrase}],
                              conversation_id=conversation)  # fmt: skip
        assert phrase.content == "Echo: terminate the server"

        again = gateway.chat("gpt-emu", [{"role": "user", "content": "delete it all"}])
        assert again.confirmation is not None
        assert gateway.cancel(again.confirmation.id).status == "cancelled"
        with pytest.raises(ConfirmationNotFound):
            gateway.confirmation(again.confirmation.id)


# --- grounding -----------------------------------------------------------------------

IDS = ["i-0a1b2c3d", "i-4e5f6071", "i-8293a4b5", "i-c6d7e8f9", "i-0f1e2d3c"]
TOOL_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "How many stopped EC2 instances do we have?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "describe_instances", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1",
     "content": str({"Instances": [{"InstanceId": i, "State": {"Name": "stopped"}} for i in IDS]})
     .replace("'", '"')},
]  # fmt: skip


def test_check_grounding(gw: GatewayUnderTest) -> None:
    with Gateway(gw.base_url, gw.token(user())) as gateway:
        bad = gateway.check_grounding(TOOL_MESSAGES, "You have 7 stopped instances.")
        good = gateway.check_grounding(TOOL_MESSAGES, "You have 5 stopped instances.")
        cited = gateway.check_grounding(
            TOOL_MESSAGES, "You have 5 stopped instances.", require_tool_citation=True
        )
        with pytest.raises(InvalidRequest) as e:
            gateway.check_grounding(TOOL_MESSAGES, "x", threshold=2)
    assert (bad.grounded, bad.contradictions) == (False, 1)
    assert [c.status for c in bad.claims if c.kind == "count"] == ["contradicted"]
    assert good.grounded is True
    assert cited.grounded is False
    assert cited.uncited
    assert e.value.code == "invalid_field"


def test_every_error_is_a_gateway_error(gw: GatewayUnderTest) -> None:
    assert issubclass(ConfirmationRequired, GatewayError)
    with Gateway(gw.base_url, gw.token(user())) as gateway, pytest.raises(GatewayError):
        gateway.chat("no-such-model", [{"role": "user", "content": "hi"}])
