"""What an adversarial test of the gateway found, each case through the real server.

Ambiguous credentials, wrong content types, type confusion, JWKS key choice,
log-line forgery, aborted and stalled uploads, oversized and slow request
heads, connection floods, an alert rule overlapping a secret, and secrets
longer than a stream's hold-back. (Malformed JWT headers are cases of
``test_authentication``'s table; DLP's field coverage is ``test_dlp_fields``.)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from llm_gateway.emulators import EmulatorServer
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.e2e.dlp_support import (
    SPEC_RULES,
    answer_with,
    ask,
    ask_stream,
    dlp_gateway,
    pieces,
    tag,
    upstream_requests,
)
from tests.e2e.test_authentication import TARGETS, Target

WAIT = 20.0  # the longest a socket read waits for the server: a bound, not a timing

# --- one credential per request ------------------------------------------------------


def _two_credentials(gateway: Gateway) -> dict[str, list[tuple[str, str]]]:
    valid = gateway.token("alice")
    return {
        "two_authorization": [("authorization", f"Bearer {valid}")] * 2,
        "two_x_api_keys": [("x-api-key", valid), ("x-api-key", "forged")],
        "bearer_and_x_api_key": [("authorization", f"Bearer {valid}"), ("x-api-key", "forged")],
    }


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)
@pytest.mark.parametrize("case", ["two_authorization", "two_x_api_keys", "bearer_and_x_api_key"])
def test_more_than_one_credential_is_refused(gateway: Gateway, target: Target, case: str) -> None:
    headers = httpx.Headers([*target.headers, *_two_credentials(gateway)[case]])
    with gateway.http() as http:
        response = http.request(target.method, target.path, json=target.body(), headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["error"]
    assert error["code"] == "ambiguous_credentials"
    assert "forged" not in response.text
    if target.chat:
        row = gateway.audit_row(response.headers["x-request-id"])
        assert (row.status, row.error_code, row.user_id) == (400, "ambiguous_credentials", None)


# --- content types -----------------------------------------------------------------

JSON_PATHS: dict[str, dict[str, object]] = {
    "/v1/chat/completions": {"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages": {
        "model": "claude-emu",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "/api/v1/chat": {"model": "ollama-emu", "messages": [{"role": "user", "content": "hi"}]},
    "/api/v1/dlp/scan": {"text": "hi"},
}


@pytest.mark.parametrize("path", JSON_PATHS)
@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=latin-1", 415),
        ("application/json", 200),
        ("Application/JSON; charset=UTF-8", 200),
    ],
)
def test_only_json_bodies_are_read(
    gateway: Gateway, path: str, content_type: str, status: int
) -> None:
    headers = {"authorization": f"Bearer {gateway.token()}", "content-type": content_type}
    with gateway.http() as http:
        response = http.post(path, content=json.dumps(JSON_PATHS[path]), headers=headers)
    assert response.status_code == status, response.text
    if status == 415:
        assert "unsupported_media_type" in response.text
    if path != "/api/v1/dlp/scan":
        row = gateway.audit_row(response.headers["x-request-id"])
        assert row.status == status


# --- type confusion ------------------------------------------------------------------


@pytest.mark.parametrize("value", [["auto"], {"type": "auto"}, 7, None])
def test_an_anthropic_tool_choice_type_of_the_wrong_type_is_a_400(
    gateway: Gateway, value: Any
) -> None:
    body = {
        **JSON_PATHS["/v1/messages"],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": value},
    }
    with gateway.http() as http:
        response = http.post("/v1/messages", json=body, headers={"x-api-key": gateway.token()})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_field"


# --- uploads the client gives up on ---------------------------------------------------


def _raw_request(gateway: Gateway, user: str, declared: int, sent: bytes) -> socket.socket:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {gateway.token(user)}\r\ncontent-type: application/json\r\n"
        f"content-length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def _row_of(gateway: Gateway, user: str) -> AuditLog:
    for _ in range(100):
        rows = gateway.audit_rows(AuditLog.user_id == user)
        if rows:
            (row,) = rows
            return row
        time.sleep(0.1)
    raise AssertionError(f"no audit row for {user}")


def test_an_aborted_upload_is_the_clients_doing(gateway: Gateway) -> None:
    user = f"aborts-{uuid.uuid4().hex[:8]}"
    sock = _raw_request(gateway, user, 1000, b'{"model": "gpt-emu", "mess')
    time.sleep(0.2)
    sock.close()
    row = _row_of(gateway, user)
    assert (row.status, row.error_code) == (499, "client_closed_request")


# --- JWKS with keys of several types --------------------------------------------------


@pytest.fixture(scope="module")
def jwks_gateway(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer
) -> Iterator[tuple[Gateway, Any, Any]]:
    """A gateway whose JWKS holds an RSA key and an EC key, neither chosen by kid."""
    tmp = tmp_path_factory.mktemp("jwks")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())),
        json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())),
    ]
    keys[0]["kid"], keys[1]["kid"] = "rsa-1", "ec-1"
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    env = {"JWT_JWKS_FILE": str(jwks), "JWT_ALLOWED_ALGORITHMS": "RS256,ES256"}
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", env)
    try:
        yield gateway, rsa_key, ec_key
    finally:
        stop_gateway(gateway)


def _signed(key: Any, algorithm: str, **headers: Any) -> str:
    claims = {"sub": "jwks-user", "role": "user", "tier": "premium", "exp": int(time.time()) + 300}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


@pytest.mark.parametrize(
    ("algorithm", "headers", "status"),
    [
        ("ES256", {}, 200),
        ("RS256", {}, 200),
        ("ES256", {"kid": "ec-1"}, 200),
        ("ES256", {"kid": "rsa-1"}, 401),  # the named key cannot verify this algorithm
        ("ES256", {"kid": "nope"}, 401),
    ],
)
def test_a_jwks_key_is_chosen_by_kid_or_by_what_can_verify_the_token(
    jwks_gateway: tuple[Gateway, Any, Any], algorithm: str, headers: dict[str, str], status: int
) -> None:
    gateway, rsa_key, ec_key = jwks_gateway
    token = _signed(ec_key if algorithm == "ES256" else rsa_key, algorithm, **headers)
    with gateway.http() as http:
        response = http.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == status, response.text
    assert "Traceback" not in gateway.logs()


# --- log lines a caller cannot forge -------------------------------------------------


def test_a_caller_cannot_forge_a_text_log_line(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer
) -> None:
    tmp = tmp_path_factory.mktemp("textlog")
    gateway = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", {"LOG_FORMAT": "text"}
    )
    forged = "2026-01-01 00:00:00,000 INFO    llm_gateway.access: request user=admin"
    try:
        for sub in (f"mallory\n{forged}", f"mallory\r{forged}", f"mallory\u2028{forged}"):
            with gateway.http() as http:
                response = http.post(
                    "/api/v1/chat",
                    json=JSON_PATHS["/api/v1/chat"],
                    headers={"authorization": f"Bearer {gateway.token(sub)}"},
                )
            assert response.status_code == 200, response.text
    finally:
        stop_gateway(gateway)
    lines = gateway.logs().splitlines()
    assert not [line for line in lines if line.startswith(forged[:30])]
    assert sum("user=mallory" in line for line in lines) == 3


# --- DLP: no rule weakens another, and no long secret partly leaves a stream ---------


@pytest.fixture(scope="module")
def confidential_gateway(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer
) -> Iterator[Gateway]:
    """The spec's rules plus an alert on CONFIDENTIAL, with the default stream hold-back."""
    rules = tmp_path_factory.mktemp("rules") / "dlp_rules.yaml"
    rules.write_text(
        SPEC_RULES.read_text() + "\n  - name: confidential\n    pattern: 'CONFIDENTIAL[^\\n]*'\n"
        "    action: alert\n    severity: low\n"
    )
    env = {"DLP_STREAM_HOLDBACK": "64"}
    with dlp_gateway(tmp_path_factory, emulator, "confidential", env, rules=rules) as gateway:
        yield gateway


AWS_PAIR = (
    "aws_access_key_id = AKIAZ7Q3M4N5P6R2T8XW\n"
    "aws_secret_access_key = Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4Ii6"
)


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_an_alert_rule_does_not_cancel_a_block(
    confidential_gateway: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    reply = ask(confidential_gateway, door, f"{marker} CONFIDENTIAL: {AWS_PAIR}")
    assert reply.status == 400, reply.body
    assert "dlp_blocked" in reply.body
    assert upstream_requests(emulator, marker) == []
    row = confidential_gateway.audit_row(reply.request_id)
    assert row.dlp_findings is not None
    findings = json.loads(row.dlp_findings)
    assert {f["entity"] for f in findings} >= {"AWS_ACCESS_KEY", "CONFIDENTIAL"}


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
def test_an_alert_that_overlaps_nothing_passes_its_text_unchanged(
    confidential_gateway: Gateway, emulator: EmulatorServer, door: str
) -> None:
    marker = tag()
    prompt = f"{marker} CONFIDENTIAL: the launch moves to May"
    reply = ask(confidential_gateway, door, prompt)
    assert reply.status == 200, reply.body
    [sent] = upstream_requests(emulator, marker)
    assert prompt in json.dumps(sent["body"])
    row = confidential_gateway.audit_row(reply.request_id)
    assert row.dlp_action == "alert"


LONG_SECRETS = {
    "xai": "xai-" + ("Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4" * 3)[:80],
    "openai_project": "sk-proj-" + ("Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4_-" * 3)[:100],
}


@pytest.mark.parametrize("door", ["openai", "anthropic", "native"])
@pytest.mark.parametrize("name", LONG_SECRETS)
def test_a_secret_longer_than_the_hold_back_never_partly_leaves_a_stream(
    confidential_gateway: Gateway, door: str, name: str
) -> None:
    secret = LONG_SECRETS[name]
    answer = f"Here it is: {secret} and nothing more to say about it today."
    chunks = [answer[i : i + 3] for i in range(0, len(answer), 3)]
    prompt = answer_with(f"{tag()} the key?", hide=(secret,), chunks=chunks)
    reply = ask_stream(confidential_gateway, door, prompt)
    # A secret in an answer ends it (content filtered): what came before it, and not
    # one piece of the secret itself.
    assert reply.text.startswith("Here it is:"), reply.chunks
    leaked = [piece for piece in pieces(secret, 3) if piece in reply.text]
    assert not leaked, reply.chunks


# --- HTTP limits -------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_gateway(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("limits")
    env = {
        "HTTP_HEADER_TIMEOUT_SECONDS": "1",
        "HTTP_BODY_TIMEOUT_SECONDS": "1",
        "HTTP_MAX_CONNECTIONS_PER_CLIENT": "40",
    }
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", env)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def _address(gateway: Gateway) -> tuple[str, int]:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    return host, int(port)


def _until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(WAIT)
    data = b""
    while chunk := sock.recv(65_536):
        data += chunk
    return data


def test_a_huge_header_is_refused_without_being_read(limited_gateway: Gateway) -> None:
    sock = socket.create_connection(_address(limited_gateway), timeout=WAIT)
    sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ")
    with contextlib.suppress(OSError):  # the server stops reading: what this test wants
        for _ in range(512):  # up to 32 MiB
            sock.sendall(b"a" * 65_536)
    data = _until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431"), data[:200]
    assert b"headers_too_large" in data


def test_a_hundred_thousand_headers_are_refused(limited_gateway: Gateway) -> None:
    sock = socket.create_connection(_address(limited_gateway), timeout=WAIT)
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n" + b"h: v\r\n" * 100_000 + b"\r\n")
    data = _until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431"), data[:200]


def test_half_sent_requests_are_closed_and_a_flood_is_bounded(limited_gateway: Gateway) -> None:
    socks = []
    for _ in range(60):
        sock = socket.create_connection(_address(limited_gateway), timeout=WAIT)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-")
        socks.append(sock)
    answers = [_until_closed(sock) for sock in socks]  # every one is closed by the server
    statuses = [a[9:12] for a in answers]
    assert statuses.count(b"503") >= 20  # beyond the 40 one client may hold
    assert statuses.count(b"408") + statuses.count(b"503") == 60
    with limited_gateway.http() as http:  # and the gateway still serves
        assert http.get("/health").status_code == 200


def test_a_stalled_body_is_recorded_as_a_timeout(limited_gateway: Gateway) -> None:
    user = f"stalls-{uuid.uuid4().hex[:8]}"
    sock = _raw_request(limited_gateway, user, 1000, b'{"model": "gpt-emu", "mess')
    _until_closed(sock)
    row = _row_of(limited_gateway, user)
    assert (row.status, row.error_code) == (408, "request_timeout")


def test_ordinary_requests_pass_the_limits(limited_gateway: Gateway) -> None:
    with limited_gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json=JSON_PATHS["/v1/chat/completions"],
            headers={"authorization": f"Bearer {limited_gateway.token()}"},
        )
    assert response.status_code == 200, response.text


# --- NER: one caller's flood does not make DLP fail for everyone ---------------------

FLOOD_TEXT = (
    "Please summarise the meeting notes that Maria Garcia wrote in Lisbon last spring "
    "about the quarterly figures, the hiring plans and the new office lease. "
) * 320  # about 49 KB


@pytest.fixture(scope="module")
def ner_gateway(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer
) -> Iterator[Gateway]:
    # A budget shorter than one flooding prompt's NER time: queued whole, first come
    # first served, any prompt behind two of them would run out of time.
    env = {"DLP_NER": "on", "DLP_NER_TIMEOUT_MS": "1500"}
    with dlp_gateway(tmp_path_factory, emulator, "ner-fair", env) as gateway:
        yield gateway


def test_a_flood_of_large_prompts_does_not_starve_another_tenant(ner_gateway: Gateway) -> None:
    stop = threading.Event()
    flood_statuses: list[int] = []

    def flood(i: int) -> None:
        token = ner_gateway.token(f"flooder-{i}", tenant="acme")
        with ner_gateway.http() as http:
            while not stop.is_set():
                message = {"role": "user", "content": FLOOD_TEXT}
                response = http.post(
                    "/api/v1/chat",
                    json={"model": "ollama-emu", "messages": [message]},
                    headers={"authorization": f"Bearer {token}"},
                )
                flood_statuses.append(response.status_code)

    flooders = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(3)]
    for thread in flooders:
        thread.start()
    try:
        time.sleep(1.0)  # the flood is on
        victim = ner_gateway.token("victim", tenant="beta")
        statuses = []
        for i in range(6):
            reply = ask(ner_gateway, "native", f"Note {i}: call Maria Garcia today.", token=victim)
            statuses.append(reply.status)
            assert "Maria Garcia" not in reply.body  # NER ran on it: the name was redacted
    finally:
        stop.set()
        for thread in flooders:
            thread.join(WAIT * 3)
    assert statuses == [200] * 6
    assert flood_statuses, "the flood ran"
    assert set(flood_statuses) <= {200, 429, 503}
