"""DLP on the way out: what the caller sends is redacted, blocked or flagged before it leaves.

One gateway with the specification's ``config/dlp_rules.yaml`` (credit_card:
redact, api_key: block, internal_ip: alert) on top of the built-in detectors,
driven through the OpenAI SDK (gpt-emu), the Anthropic SDK (claude-emu) and
the native API (ollama-emu). The emulator's request log proves what the
provider received; the audit row and the gateway's log what was recorded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bench.dlp_values import CRAFTED_SLOW
from openai.types.chat import ChatCompletionFunctionToolParam

from llm_gateway.audit.records import digest
from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import PROVIDER_KEY, Gateway, directive
from tests.e2e.dlp_support import (
    API_KEY,
    DOOR_MODEL,
    DOORS,
    SSN,
    ask,
    dlp_gateway,
    findings_of,
    log_records,
    tag,
    upstream_requests,
)

by_door = pytest.mark.parametrize("door", DOORS)
SSN_MARKER = "<SSN_REDACTED>"
SSN_DIGITS = SSN.replace("-", "")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """This module's own emulator: its 500 KB prompts stay out of the session's request log,
    which every other e2e test reads."""
    server = EmulatorServer(api_key=PROVIDER_KEY).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with dlp_gateway(tmp_path_factory, emulator, "dlp-request") as gateway:
        yield gateway


def assert_no_ssn(sent: Any) -> None:
    dumped = json.dumps(sent)
    assert SSN not in dumped, dumped
    assert SSN_DIGITS not in dumped, dumped


# --- 1. redaction ----------------------------------------------------------------


@by_door
def test_ssn_in_the_prompt_is_redacted_before_the_upstream_sees_it(
    gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    prompt = f"{marker} my SSN is {SSN}, keep it safe"
    redacted = f"{marker} my SSN is {SSN_MARKER}, keep it safe"
    reply = ask(gw, door, prompt)
    assert reply.status == 200, reply.body

    [sent] = upstream_requests(emulator, marker)
    assert_no_ssn(sent)
    assert redacted in json.dumps(sent["body"])
    assert reply.text == f"Echo: {redacted}"  # the model only ever saw the marker
    assert SSN not in reply.body

    row = gw.audit_row(reply.request_id)
    assert row.dlp_action == "redact"
    assert findings_of(row) == [
        {"entity": "US_SSN", "direction": "request", "count": 1, "action": "redact"}
    ]
    # the stored digest is the redacted prompt's: the audit never fingerprints the value
    assert (row.prompt_sha256, row.prompt_chars) == digest([redacted])


def test_native_response_reports_the_pii_it_found(gw: Gateway, emulator: EmulatorServer) -> None:
    marker = tag()
    reply = ask(gw, "native", f"{marker} ssn {SSN}", system=f"The user's SSN is {SSN}.")
    assert reply.status == 200, reply.body
    metadata = reply.data["metadata"]
    assert metadata["pii_detected"] is True
    assert metadata["pii_entities"] == ["SSN"]
    [sent] = upstream_requests(emulator, marker)
    assert_no_ssn(sent)
    assert sent["body"]["messages"][0] == {
        "role": "system",
        "content": f"The user's SSN is {SSN_MARKER}.",
    }


def test_native_response_reports_no_pii_for_a_clean_prompt(gw: Gateway) -> None:
    reply = ask(gw, "native", f"{tag()} nothing to see here")
    assert reply.status == 200, reply.body
    assert reply.data["metadata"]["pii_detected"] is False
    assert reply.data["metadata"]["pii_entities"] == []
    assert gw.audit_row(reply.request_id).dlp_action is None


LOOKUP_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"ssn": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("model", ["gpt-emu", "claude-emu", "ollama-emu"])
def test_ssn_in_system_prompt_tool_arguments_and_tool_result_is_redacted_openai_sdk(
    gw: Gateway, emulator: EmulatorServer, model: str
) -> None:
    marker = tag()
    raw = gw.openai().chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": f"The caller's SSN is {SSN}."},
            {"role": "user", "content": f"{marker} look me up"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"ssn": SSN})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"record of {SSN}: active"},
        ],
        tools=[LOOKUP_TOOL],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == f"Tool said: record of {SSN_MARKER}: active"

    [sent] = upstream_requests(emulator, marker)
    assert_no_ssn(sent)
    body = json.dumps(sent["body"])
    assert body.count(SSN_MARKER) == 3, body
    row = gw.audit_row(raw.headers["x-request-id"])
    assert findings_of(row) == [
        {"entity": "US_SSN", "direction": "request", "count": 3, "action": "redact"}
    ]


@pytest.mark.parametrize("model", ["claude-emu", "gpt-emu"])
def test_ssn_in_system_prompt_tool_use_and_tool_result_is_redacted_anthropic_sdk(
    gw: Gateway, emulator: EmulatorServer, model: str
) -> None:
    marker = tag()
    raw = gw.anthropic().messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system=f"The caller's SSN is {SSN}.",
        messages=[
            {"role": "user", "content": f"{marker} look me up"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"ssn": SSN}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": f"record of {SSN}: active",
                    }
                ],
            },
        ],
        tools=[{"name": "lookup", "input_schema": LOOKUP_TOOL["function"]["parameters"]}],
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == f"Tool said: record of {SSN_MARKER}: active"

    [sent] = upstream_requests(emulator, marker)
    assert_no_ssn(sent)
    assert json.dumps(sent["body"]).count(SSN_MARKER) == 3
    row = gw.audit_row(raw.headers["x-request-id"])
    assert findings_of(row) == [
        {"entity": "US_SSN", "direction": "request", "count": 3, "action": "redact"}
    ]


# --- 2. block --------------------------------------------------------------------

ERROR_TYPE = {"openai": "invalid_request_error", "anthropic": "invalid_request_error"}


def assert_blocked(door: str, status: int, body: str, data: Any) -> dict[str, Any]:
    """A 400 dlp_blocked in the door's own format, naming rule and severity, never the key."""
    assert status == 400, body
    if door == "anthropic":
        assert data["type"] == "error"
        error = data["error"]
    else:
        assert set(data) == {"error"}
        error = data["error"]
    assert error["code"] == "dlp_blocked"
    if door in ERROR_TYPE:
        assert error["type"] == ERROR_TYPE[door]
    else:
        assert error["type"] == "invalid_request"
    assert error["findings"] == [{"rule": "api_key", "entity": "API_KEY", "severity": "critical"}]
    assert "api_key" in error["message"]
    for piece in (API_KEY, API_KEY[3:15], API_KEY[-12:]):
        assert piece not in body
    return dict(error)


@by_door
def test_api_key_in_the_prompt_is_blocked(gw: Gateway, emulator: EmulatorServer, door: str) -> None:
    marker = tag()
    reply = ask(gw, door, f"{marker} use my key {API_KEY} please")
    assert_blocked(door, reply.status, reply.body, reply.data)
    assert upstream_requests(emulator, marker) == []

    row = gw.audit_row(reply.request_id)
    assert (row.status, row.error_code, row.endpoint) == (400, "dlp_blocked", door)
    assert row.dlp_action == "block"
    assert findings_of(row) == [
        {"entity": "API_KEY", "direction": "request", "count": 1, "action": "block"}
    ]
    assert (row.tokens_used, row.model) == (0, None)  # refused before routing


DOOR_PATH = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "native": "/api/v1/chat",
}


@by_door
def test_api_key_in_a_streamed_request_is_refused_before_the_stream_starts(
    gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    body: dict[str, Any] = {
        "model": DOOR_MODEL[door],
        "messages": [{"role": "user", "content": f"{marker} {API_KEY}"}],
        "stream": True,
    }
    if door == "anthropic":
        body["max_tokens"] = 64
    with gw.http() as http:
        response = http.post(
            DOOR_PATH[door], json=body, headers={"authorization": f"Bearer {gw.token()}"}
        )
    assert response.headers["content-type"].startswith("application/json")
    assert_blocked(door, response.status_code, response.text, response.json())
    assert upstream_requests(emulator, marker) == []
    assert gw.audit_row(response.headers["x-request-id"]).stream is True


def test_api_key_in_a_tool_result_is_blocked(gw: Gateway, emulator: EmulatorServer) -> None:
    marker = tag()
    with gw.http() as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {gw.token()}"},
            json={
                "model": "gpt-emu",
                "messages": [
                    {"role": "user", "content": f"{marker} read the config"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "read", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": f"OPENAI={API_KEY}"},
                ],
            },
        )
    assert_blocked("openai", response.status_code, response.text, response.json())
    assert upstream_requests(emulator, marker) == []


def test_block_wins_over_redaction_in_the_same_request(
    gw: Gateway, emulator: EmulatorServer
) -> None:
    marker = tag()
    reply = ask(gw, "openai", f"{marker} ssn {SSN} key {API_KEY}")
    assert_blocked("openai", reply.status, reply.body, reply.data)
    assert SSN not in reply.body
    assert upstream_requests(emulator, marker) == []
    row = gw.audit_row(reply.request_id)
    assert row.dlp_action == "block"
    assert {f["entity"]: f["action"] for f in findings_of(row)} == {
        "API_KEY": "block",
        "US_SSN": "redact",
    }


def test_blocked_key_never_reaches_the_gateway_log(gw: Gateway) -> None:
    reply = ask(gw, "openai", f"{tag()} {API_KEY}")
    assert reply.status == 400
    assert API_KEY[3:15] not in gw.logs()


# --- 3. alert --------------------------------------------------------------------


def internal_ip() -> str:
    return "10." + ".".join(str(random.randint(1, 254)) for _ in range(3))


@pytest.mark.parametrize("door", ["openai", "anthropic"])
def test_alert_rule_raises_an_alert_and_never_weakens_a_redaction(
    gw: Gateway, emulator: EmulatorServer, door: str
) -> None:
    """The spec's internal_ip alert overlaps the built-in IP detector: the stricter
    redaction applies, and the alert is raised all the same (test_hardening has an
    alert that overlaps nothing, and passes its text unchanged)."""
    marker = tag()
    ip = internal_ip()
    prompt = f"{marker} the build server is {ip}"
    reply = ask(gw, door, prompt)
    assert reply.status == 200, reply.body

    [sent] = upstream_requests(emulator, marker)
    assert ip not in json.dumps(sent["body"])
    assert f"{marker} the build server is <IP_ADDRESS_REDACTED>" in json.dumps(sent["body"])

    row = gw.audit_row(reply.request_id)
    assert row.dlp_action == "redact"
    findings = findings_of(row)
    assert {"entity": "INTERNAL_IP", "direction": "request", "count": 1, "action": "alert"} in (
        findings
    )
    assert {"entity": "IP_ADDRESS", "direction": "request", "count": 1, "action": "redact"} in (
        findings
    )
    alerts = [
        r
        for r in log_records(gw)
        if r.get("msg") == "DLP alert" and r.get("request_id") == reply.request_id
    ]
    request_alerts = [a for a in alerts if a.get("direction") == "request"]
    assert len(request_alerts) == 1, alerts
    assert request_alerts[0]["rules"] == ["internal_ip"]
    assert request_alerts[0]["level"] == "warning"
    assert ip not in gw.logs()  # the alert names the rule, never the value


# --- 8. bad input at run time --------------------------------------------------------


def nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@by_door
@pytest.mark.parametrize("depth", [1000, 10_000])
def test_deeply_nested_content_is_a_clear_400(
    gw: Gateway, emulator: EmulatorServer, door: str, depth: int
) -> None:
    marker = tag()
    body = (
        b'{"model": "' + DOOR_MODEL[door].encode() + b'", "max_tokens": 16, "messages": '
        b'[{"role": "user", "content": ' + nested_lists(depth) + b'}], "x": "' + marker.encode()
        + b'"}'
    )  # fmt: skip
    with gw.http() as http:
        response = http.post(
            DOOR_PATH[door],
            content=body,
            headers={"authorization": f"Bearer {gw.token()}", "content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    data = response.json()
    error = data["error"]
    assert error["code"] in {"invalid_json", "invalid_field", "unsupported_content"}, error
    assert upstream_requests(emulator, marker) == []


def test_huge_body_is_refused_with_413_before_any_scan(
    gw: Gateway, emulator: EmulatorServer
) -> None:
    marker = tag()
    prompt = marker + (f" ssn {SSN}" * 200_000)  # 3.2 MB, over the default 2 MiB
    reply = ask(gw, "openai", prompt)
    assert reply.status == 413, reply.body[:300]
    assert reply.error("openai")["code"] == "body_too_large"
    assert upstream_requests(emulator, marker) == []


@pytest.mark.parametrize("case", list(CRAFTED_SLOW))
def test_text_crafted_to_be_slow_is_answered(
    gw: Gateway, emulator: EmulatorServer, case: str
) -> None:
    """Answered at all: a backtracking blow-up on 500 KB would outlast the suite's timeout
    by hours. How long the scan takes is measured in bench/dlp_speed.py, not here."""
    marker = tag()
    reply = ask(gw, "openai", f"{marker} {CRAFTED_SLOW[case]}")
    assert reply.status == 200, reply.body[:300]
    [sent] = upstream_requests(emulator, marker)
    assert SSN not in json.dumps(sent["body"])


# --- 10. /ready ------------------------------------------------------------------


def test_ready_reports_dlp_on_and_ner_off(gw: Gateway) -> None:
    response = httpx.get(f"{gw.base_url}/ready", timeout=5)
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["dlp"] == "on"
    assert checks["ner"] == "off"


def test_directive_without_sensitive_data_passes_untouched(
    gw: Gateway, emulator: EmulatorServer
) -> None:
    """The control: a clean prompt reaches the provider byte for byte, with no DLP record."""
    marker = tag()
    reply = ask(gw, "openai", directive(f"{marker} order 1234-5678", reply="fine"))
    assert reply.status == 200
    assert reply.text == "fine"
    [sent] = upstream_requests(emulator, marker)
    assert f"{marker} order 1234-5678" in sent["body"]["messages"][0]["content"]
    row = gw.audit_row(reply.request_id)
    assert (row.dlp_action, row.dlp_findings) == (None, None)
