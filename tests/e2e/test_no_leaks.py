"""No secret or raw PII value reaches the logs, the audit trail, the database or an error body.

One end-to-end run plants known values everywhere a caller can put them: in
prompts (redacted on the way out), in answers (the model says them back), in
tool-call arguments, in a system prompt, in request headers, as credentials
(refused), in a prompt DLP blocks, and in the grounding API's tool results.
Then every place the gateway writes is read back and searched for each
planted value: the gateway's log, every column of every audit row, the
database file's raw bytes (the vault's values are sealed, so even it must not
hold them in clear), the answers' error bodies, and ``/metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.e2e.dlp_support import AWS_KEY_ID, EMAIL, GITHUB_TOKEN, SSN, answer_with

CARD = "4539 1488 0343 6467"  # passes Luhn
PHONE = "+1 415-555-0198"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAt3yZq9ZbW1kT2mX8vLqP\n"
JWT_LIKE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.3q2-7wP0x9YbKcR1nT5uVzA8sD4fG6hJ"
PLANTED = {
    "ssn": SSN, "email": EMAIL, "card": CARD, "card digits": CARD.replace(" ", ""),
    "phone": PHONE, "aws key": AWS_KEY_ID, "github token": GITHUB_TOKEN,
    "private key body": "MIIEowIBAAKCAQEAt3yZq9ZbW1kT2mX8vLqP", "credential": JWT_LIKE,
}  # fmt: skip


@pytest.fixture(scope="module")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("no-leaks")
    # Reversible tokens: the vault keeps every redacted value, sealed, in the same database.
    env = {"LOG_LEVEL": "debug", "DLP_SCAN_RESPONSES": "true", "DLP_OPERATOR": "token"}
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gw.db", env)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def _post(gw: Gateway, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=gw.base_url, timeout=30) as http:
        return http.post(path, json=body, headers=headers)


def test_planted_values_are_nowhere_the_gateway_writes(gw: Gateway, tmp_path: Path) -> None:
    auth = {"authorization": f"Bearer {gw.token('planter')}"}
    said: list[httpx.Response] = []
    pii = f"My SSN is {SSN}, card {CARD}, mail {EMAIL}, phone {PHONE}."
    tool_call = {"name": "lookup", "arguments": {"ssn": SSN, "email": EMAIL}}
    said += [
        # PII in a prompt and a system prompt, with a header carrying a value too.
        _post(gw, "/v1/chat/completions", {"model": "gpt-emu", "messages": [
            {"role": "system", "content": f"The customer's card is {CARD}."},
            {"role": "user", "content": pii}]},
            {**auth, "x-customer-email": EMAIL}),
        # The model answers with PII, and with a tool call whose arguments carry it.
        _post(gw, "/v1/chat/completions", {"model": "gpt-emu", "messages": [
            {"role": "user", "content": answer_with(
                "answer please", reply=f"Her SSN is {SSN} and mail {EMAIL}",
                hide=(SSN, EMAIL))}]}, auth),
        _post(gw, "/v1/chat/completions", {"model": "gpt-emu", "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {}}}],
            "messages": [{"role": "user", "content": answer_with(
                "look it up", tool_calls=[tool_call], hide=(SSN, EMAIL))}]}, auth),
        # Secrets in a prompt: blocked, and the error must not quote them.
        _post(gw, "/v1/chat/completions", {"model": "gpt-emu", "messages": [
            {"role": "user", "content": f"keys {AWS_KEY_ID} {GITHUB_TOKEN}\n{PRIVATE_KEY}"}]},
            auth),
        _post(gw, "/v1/messages", {"model": "claude-emu", "max_tokens": 50, "messages": [
            {"role": "user", "content": f"token {GITHUB_TOKEN}"}]}, auth),
        # Credentials that are refused: a stranger's token and a made-up key.
        _post(gw, "/v1/chat/completions", {"model": "gpt-emu", "messages": [
            {"role": "user", "content": "hi"}]}, {"authorization": f"Bearer {JWT_LIKE}"}),
        _post(gw, "/api/v1/chat", {"model": "ollama-emu", "messages": [
            {"role": "user", "content": "hi"}]}, {"x-api-key": f"lsg_{GITHUB_TOKEN}"}),
        # Tool results with PII, through the grounding API.
        _post(gw, "/api/v1/guardrails/grounding", {"answer": f"The SSN is {SSN}.", "messages": [
            {"role": "user", "content": "what is on file?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "crm", "arguments": json.dumps({"email": EMAIL})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"ssn": SSN})}]}, auth),
        _post(gw, "/api/v1/dlp/scan", {"text": pii}, auth),
        # A stream: its opening row goes to the audit spool before its first byte.
        _post(gw, "/v1/chat/completions", {"model": "gpt-emu", "stream": True, "messages": [
            {"role": "user", "content": pii}]}, auth),
    ]  # fmt: skip
    statuses = [r.status_code for r in said]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:5] == [400, 400]  # DLP blocks the secrets
    assert statuses[5:7] == [401, 401]
    assert statuses[7:] == [200, 200, 200]

    with httpx.Client(base_url=gw.base_url) as http:
        metrics = http.get("/metrics").text
    rows = gw.audit_rows(AuditLog.id > 0)
    assert len(rows) >= len(said)  # every request has its row
    audit = "\n".join(
        json.dumps({c.name: getattr(r, c.name) for c in AuditLog.__table__.columns}, default=str)
        for r in rows
    )
    path = Path(gw.database_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]  # the WAL holds the newest pages
    database = b"".join(f.read_bytes() for f in files if f.exists())
    spool_files = sorted((Path(gw.env["DATA_DIR"]) / "audit-spool").rglob("*.jsonl"))
    spool = b"".join(f.read_bytes() for f in spool_files).decode("utf-8", "replace")
    places = {
        "spool": spool,
        "log": gw.logs(),
        "audit rows": audit,
        "database file": database.decode("latin-1"),
        "metrics": metrics,
        "error bodies": "\n".join(r.text for r in said if r.status_code >= 400),
    }
    leaks = [
        f"{what} in the {place}"
        for place, text in places.items()
        for what, value in PLANTED.items()
        if value in text
    ]
    assert not leaks, leaks
    # The search does find what is meant to be there: the caller's id is logged and audited.
    assert "planter" in places["log"]
    assert "planter" in places["audit rows"]
    assert "planter" in places["database file"]
    assert "planter" in places["spool"]  # the stream's opening row
