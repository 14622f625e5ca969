"""Authentication through every front door and ``GET /v1/models``.

A refused credential gets 401 in the door's own error format with a specific
code, a ``www-authenticate`` header, no trace of the credential in the body or
the gateway's log, and (on a chat door) an audit row with no user. API keys
are created and revoked with the CLI against the running gateway's database,
and used the way the SDKs send them: ``x-api-key`` (Anthropic) and bearer (OpenAI).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import jwt
import openai
import pytest
from anthropic.types import MessageParam
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openai.types.chat import ChatCompletionMessageParam

from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import JWT_SECRET, Gateway
from tests.harness import run_cli

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
# HS512 with the harness's 43-byte secret is refused anyway; PyJWT's advice is noise here.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


# --- where a credential can be refused -------------------------------------------


@dataclass(frozen=True)
class Target:
    id: str
    method: str
    path: str
    shape: str  # the error format: openai, anthropic or native
    via: str  # how a credential is sent: "bearer" or "x-api-key"
    chat: bool  # a chat door or /v1/models (a management action, audited all the same)
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, Any] | None:
        """A valid body, so that the credential is the only thing wrong."""
        messages = [{"role": "user", "content": "hello"}]
        if self.path == "/v1/chat/completions":
            return {"model": "gpt-emu", "messages": messages}
        if self.path == "/v1/messages":
            return {"model": "claude-emu", "max_tokens": 32, "messages": messages}
        if self.path == "/api/v1/chat":
            return {"model": "ollama-emu", "messages": messages}
        return None

    def send(self, gateway: Gateway, headers: dict[str, str]) -> httpx.Response:
        with gateway.http() as http:
            return http.request(
                self.method, self.path, json=self.body(), headers={**dict(self.headers), **headers}
            )

    def carry(self, credential: str) -> dict[str, str]:
        if self.via == "x-api-key":
            return {"x-api-key": credential}
        return {"authorization": f"Bearer {credential}"}

    def error(self, body: Any) -> tuple[dict[str, Any], str, str]:
        """(error object, request id, expected error type), checking the exact shape."""
        if self.shape == "anthropic":
            assert set(body) == {"type", "error", "request_id"}, body
            assert body["type"] == "error"
            assert set(body["error"]) == {"type", "message", "code"}, body
            return body["error"], body["request_id"], "authentication_error"
        assert set(body) == {"error"}, body
        error = body["error"]
        if self.shape == "openai":
            assert set(error) == {"message", "type", "param", "code", "request_id"}, body
            return error, error["request_id"], "authentication_error"
        assert set(error) == {"type", "code", "message", "request_id"}, body
        return error, error["request_id"], "authentication"


ANTHROPIC_VERSION = (("anthropic-version", "2023-06-01"),)
TARGETS = (
    Target("openai", "POST", "/v1/chat/completions", "openai", "bearer", chat=True),
    Target("openai-x-api-key", "POST", "/v1/chat/completions", "openai", "x-api-key", chat=True),
    Target("anthropic", "POST", "/v1/messages", "anthropic", "x-api-key", chat=True),
    Target("anthropic-bearer", "POST", "/v1/messages", "anthropic", "bearer", chat=True),
    Target("native", "POST", "/api/v1/chat", "native", "bearer", chat=True),
    Target("models", "GET", "/v1/models", "openai", "bearer", chat=False),
    Target(
        "models-anthropic", "GET", "/v1/models", "anthropic", "x-api-key", chat=False,
        headers=ANTHROPIC_VERSION,
    ),
)  # fmt: skip
ENDPOINTS = {
    "/v1/chat/completions": "openai",
    "/v1/messages": "anthropic",
    "/api/v1/chat": "native",
    "/v1/models": "models.list",  # management actions are audited as their action
}


# --- credentials -----------------------------------------------------------------


def cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """``llm-gateway ...`` against the running gateway's own settings and database
    (in-process: ``tests/harness.py``)."""
    return run_cli(args, gateway.env, gateway.log_path.parent)


def create_key(gateway: Gateway, *extra: str, user: str = "svc") -> tuple[str, str]:
    """Create an API key with the CLI; return (key, key id)."""
    done = cli(gateway, "keys", "create", "--user", user, "--role", "user", "--tier", "premium",
               *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"the key must be the only stdout line: {done.stdout!r}"
    key = lines[0]
    match = re.fullmatch(r"lsg_([0-9a-f]{12})_\S+", key)
    assert match, key
    assert match.group(1) in done.stderr  # the id is told on stderr, the key is not
    assert key not in done.stderr
    return key, match.group(1)


def revoke_key(gateway: Gateway, key_id: str) -> None:
    done = cli(gateway, "keys", "revoke", key_id)
    assert done.returncode == 0, done.stderr


def b64(data: Any) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"sub": "mallory", "role": "admin", "exp": int(time.time()) + 600}
    payload.update(extra)
    return {k: v for k, v in payload.items() if v is not None}


def tampered(gateway: Gateway) -> str:
    """A valid token whose payload was rewritten (sub: admin) under the old signature."""
    header, _, signature = gateway.token("alice").split(".")
    return f"{header}.{b64(claims(sub='admin'))}.{signature}"


def rsa_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(claims(), pem, algorithm="RS256")


@dataclass
class Credentials:
    gateway: Gateway
    revoked_key: str
    expired_key: str
    active_key: str
    active_key_id: str


@pytest.fixture(scope="module")
def creds(gateway: Gateway) -> Credentials:
    revoked, revoked_id = create_key(gateway, "--description", "to be revoked")
    revoke_key(gateway, revoked_id)
    expired, _ = create_key(gateway, "--expires", "2000-01-01T00:00:00")
    active, active_id = create_key(gateway)
    return Credentials(gateway, revoked, expired, active, active_id)


#: id -> (code, credential): sent the target's way (bearer or x-api-key).
CREDENTIALS: dict[str, tuple[str, Callable[[Credentials], str]]] = {
    "garbage": ("malformed_token", lambda c: "not-a-token-" + uuid.uuid4().hex),
    "three_dots": ("malformed_token", lambda c: "abc.def.ghi"),
    "bad_base64": ("malformed_token", lambda c: "eyJ!!!.eyJ!!!.sig"),
    "expired": ("token_expired", lambda c: c.gateway.token("alice", exp=int(time.time()) - 3600)),
    "expired_past_leeway": (
        "token_expired", lambda c: c.gateway.token("alice", exp=int(time.time()) - 120)
    ),
    "not_yet_valid": (
        "token_not_yet_valid", lambda c: c.gateway.token("alice", nbf=int(time.time()) + 3600)
    ),
    "wrong_secret": (
        "invalid_signature", lambda c: jwt.encode(claims(), "another-secret-" + "y" * 32)
    ),
    "tampered": ("invalid_signature", lambda c: tampered(c.gateway)),
    "alg_none": ("algorithm_not_allowed", lambda c: f"{b64({'alg': 'none'})}.{b64(claims())}."),
    "alg_none_typ": (
        "algorithm_not_allowed",
        lambda c: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
    ),
    "alg_hs512": ("algorithm_not_allowed", lambda c: jwt.encode(claims(), JWT_SECRET, "HS512")),
    "alg_rs256": ("algorithm_not_allowed", lambda c: rsa_token()),
    "no_exp": ("invalid_claims", lambda c: jwt.encode(claims(exp=None), JWT_SECRET, "HS256")),
    "no_sub": ("invalid_claims", lambda c: jwt.encode(claims(sub=None), JWT_SECRET, "HS256")),
    "sub_number": ("invalid_claims", lambda c: jwt.encode(claims(sub=42), JWT_SECRET, "HS256")),
    "role_list": (
        "invalid_claims", lambda c: jwt.encode(claims(role=["admin"]), JWT_SECRET, "HS256")
    ),
    # Headers a verifier must check before trusting anything in them (RFC 7515).
    "crit_header": (
        "unsupported_critical_header",
        lambda c: jwt.encode(claims(), JWT_SECRET, "HS256", headers={"crit": ["exp"]}),
    ),
    "kid_number": (
        "malformed_token", lambda c: f"{b64({'alg': 'HS256', 'kid': 5})}.{b64(claims())}.x"
    ),
    "alg_list": ("malformed_token", lambda c: f"{b64({'alg': ['HS256']})}.{b64(claims())}.x"),
    "alg_object": ("malformed_token", lambda c: f"{b64({'alg': {'a': 1}})}.{b64(claims())}.x"),
    "header_not_an_object": ("malformed_token", lambda c: f"{b64([1])}.{b64(claims())}.x"),
    "api_key_malformed": ("malformed_api_key", lambda c: "lsg_short"),
    "api_key_unknown": (
        "unknown_api_key", lambda c: f"lsg_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    ),
    "api_key_wrong_secret": (
        "unknown_api_key", lambda c: f"lsg_{c.active_key_id}_{uuid.uuid4().hex}"
    ),
    "api_key_revoked": ("api_key_revoked", lambda c: c.revoked_key),
    "api_key_expired": ("api_key_expired", lambda c: c.expired_key),
}  # fmt: skip

#: id -> (code, headers): sent as they are, whatever the target.
RAW_HEADERS: dict[str, tuple[str, Callable[[Credentials], dict[str, str]]]] = {
    "missing": ("missing_credentials", lambda c: {}),
    "empty_x_api_key": ("missing_credentials", lambda c: {"x-api-key": ""}),
    "basic": ("malformed_credentials", lambda c: {"authorization": "Basic YWxpY2U6aHVudGVyMg=="}),
    "bearer_without_value": ("malformed_credentials", lambda c: {"authorization": "Bearer"}),
    "token_scheme": (
        "malformed_credentials",
        lambda c: {"authorization": f"Token {c.gateway.token('alice')}"},
    ),
    "raw_token_without_scheme": (
        "malformed_credentials", lambda c: {"authorization": c.gateway.token("alice")}
    ),
}  # fmt: skip


def secret_parts(value: str) -> list[str]:
    """The credential and its secret-looking pieces (signature, key secret, base64 blob)."""
    parts = [value] if len(value) >= 16 else []
    for piece in re.split(r"[.\s]", value):
        if piece.startswith("lsg_"):
            piece = piece.split("_", 2)[-1]  # the key's secret, not its public id
        if len(piece) >= 16 and not piece.startswith("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"):
            parts.append(piece)
    return parts


def assert_refused(
    gateway: Gateway, target: Target, response: httpx.Response, code: str, secrets: list[str]
) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    error, request_id, kind = target.error(response.json())
    assert error["code"] == code, error
    assert error["type"] == kind
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert request_id == response.headers["x-request-id"]
    logs = gateway.logs()
    for secret in secrets:
        assert secret not in response.text, f"the credential was echoed: {response.text}"
        assert secret not in logs, "the credential was written to the gateway's log"
    # A caller's bad input is not the gateway's failure: no traceback is logged for it.
    for line in logs.splitlines():
        if request_id in line:
            assert "Traceback" not in line, line
            assert '"exc"' not in line, line
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.endpoint) == (401, code, ENDPOINTS[target.path])
    assert (row.user_id, row.key_id, row.auth_method, row.team, row.tenant) == (None,) * 5
    # refused before the body was read: nothing about the request is known
    assert (row.model_requested, row.model, row.prompt_sha256) == (None, None, None)
    assert (row.tokens_used, row.cost_usd) == (0, 0)


by_target = pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)


@by_target
@pytest.mark.parametrize("case", list(CREDENTIALS))
def test_refused_credential(creds: Credentials, target: Target, case: str) -> None:
    code, make = CREDENTIALS[case]
    credential = make(creds)
    response = target.send(creds.gateway, target.carry(credential))
    assert_refused(creds.gateway, target, response, code, secret_parts(credential))


@by_target
@pytest.mark.parametrize("case", list(RAW_HEADERS))
def test_refused_header(creds: Credentials, target: Target, case: str) -> None:
    code, make = RAW_HEADERS[case]
    headers = make(creds)
    response = target.send(creds.gateway, headers)
    secrets = [part for value in headers.values() if value.strip() for part in secret_parts(value)]
    assert_refused(creds.gateway, target, response, code, secrets)


# --- accepted credentials --------------------------------------------------------


@by_target
def test_valid_token(gateway: Gateway, target: Target) -> None:
    token = gateway.token("alice", team="blue", tenant="acme")
    response = target.send(gateway, target.carry(token))
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers
    if target.chat:
        row = gateway.audit_row(response.headers["x-request-id"])
        assert (row.status, row.user_id, row.auth_method, row.key_id) == (200, "alice", "jwt", None)
        assert (row.team, row.tenant) == ("blue", "acme")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_bearer_scheme_is_case_insensitive(gateway: Gateway, scheme: str) -> None:
    with gateway.http() as http:
        response = http.get("/v1/models", headers={"authorization": f"{scheme} {gateway.token()}"})
    assert response.status_code == 200, response.text


def test_token_within_leeway_is_accepted(gateway: Gateway) -> None:
    """JWT_LEEWAY_SECONDS (30 by default) tolerates clock skew on ``exp``."""
    token = gateway.token("alice", exp=int(time.time()) - 5)
    with gateway.http() as http:
        response = http.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def test_authorization_and_x_api_key_together_are_ambiguous(gateway: Gateway) -> None:
    """With both headers, neither wins: a forged one could ride along (test_hardening)."""
    with gateway.http() as http:
        response = http.get(
            "/v1/models",
            headers={"authorization": f"Bearer {gateway.token()}", "x-api-key": "garbage"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "ambiguous_credentials"


@pytest.mark.parametrize("path", ["/health", "/ready"])
@pytest.mark.parametrize("headers", [{}, {"authorization": "Basic YWxpY2U6aHVudGVyMg=="}])
def test_health_needs_no_authentication(
    gateway: Gateway, path: str, headers: dict[str, str]
) -> None:
    with gateway.http() as http:
        response = http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("ok", "ready")
    assert "www-authenticate" not in response.headers


# --- authentication comes before the body ----------------------------------------


@pytest.mark.parametrize(
    "target", [t for t in TARGETS if t.chat and t.via == "bearer"], ids=lambda t: t.id
)
@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe", b'{"model": "no-such-model", "messages": []}'],
    ids=["malformed_json", "not_utf8", "unknown_model"],
)
def test_no_credentials_is_refused_before_the_body_is_looked_at(
    gateway: Gateway, target: Target, content: bytes
) -> None:
    with gateway.http() as http:
        response = http.post(
            target.path, content=content, headers={"content-type": "application/json"}
        )
    assert_refused(gateway, target, response, "missing_credentials", [])


# --- API keys made with the CLI ----------------------------------------------------


#: The prompt of the API key lifecycle, typed once for each SDK.
PING_ANTHROPIC: list[MessageParam] = [{"role": "user", "content": "ping"}]
PING_OPENAI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "ping"}]


def test_api_key_lifecycle(gateway: Gateway) -> None:
    """Create a key with the CLI, use it through both SDKs and plain HTTP, revoke it."""
    user = f"svc-{uuid.uuid4().hex[:8]}"
    key, key_id = create_key(gateway, "--team", "ops", user=user)

    anthropic_client = gateway.anthropic(key)
    openai_client = gateway.openai(key)

    rows = _audit_rows_of_calls_with_key(gateway, key, anthropic_client, openai_client)
    for how, row in rows.items():
        endpoint = how.split()[0]
        assert (row.status, row.endpoint, row.user_id, row.team) == (200, endpoint, user, "ops")
        assert (row.key_id, row.auth_method) == (key_id, "api_key")

    listed = cli(gateway, "keys", "list")
    assert listed.returncode == 0
    assert key_id in listed.stdout
    assert key not in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout

    revoke_key(gateway, key_id)  # API_KEY_CACHE_SECONDS=0: effective at once

    _assert_the_sdks_are_refused_the_revoked_key(gateway, key, anthropic_client, openai_client)
    with gateway.http() as http:
        models = http.get("/v1/models", headers={"x-api-key": key})
    assert models.status_code == 401
    assert models.json()["error"]["code"] == "api_key_revoked"
    assert key not in gateway.logs()


def _audit_rows_of_calls_with_key(
    gateway: Gateway,
    key: str,
    anthropic_client: anthropic.Anthropic,
    openai_client: openai.OpenAI,
) -> dict[str, AuditLog]:
    """Call every door with ``key`` (both SDKs, ``x-api-key``, native), check each answer
    and ``GET /v1/models``; return each chat call's audit row by how it was made (the
    first word is the endpoint the row must name)."""
    # Anthropic SDK (this version sends api_key as a bearer token, older ones as x-api-key)
    raw = anthropic_client.messages.with_raw_response.create(
        model="claude-emu", max_tokens=32, messages=PING_ANTHROPIC
    )
    first_block = raw.parse().content[0]
    assert first_block.type == "text"
    assert first_block.text == "Echo: ping"
    anthropic_row = gateway.audit_row(raw.headers["x-request-id"])

    # OpenAI SDK: the key travels as a bearer token
    raw_openai = openai_client.chat.completions.with_raw_response.create(
        model="gpt-emu", messages=PING_OPENAI
    )
    assert raw_openai.parse().choices[0].message.content == "Echo: ping"
    openai_row = gateway.audit_row(raw_openai.headers["x-request-id"])

    with gateway.http() as http:
        messages = http.post(
            "/v1/messages",
            json={"model": "claude-emu", "max_tokens": 32, "messages": PING_ANTHROPIC},
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )
        native = http.post(
            "/api/v1/chat",
            json={"model": "ollama-emu", "messages": PING_OPENAI},
            headers={"authorization": f"Bearer {key}"},
        )
        models = http.get("/v1/models", headers={"x-api-key": key})
    assert messages.status_code == 200, messages.text
    x_api_key_row = gateway.audit_row(messages.headers["x-request-id"])
    assert native.status_code == 200, native.text
    native_row = gateway.audit_row(native.headers["x-request-id"])
    assert models.status_code == 200
    assert {m["id"] for m in models.json()["data"]} >= {"gpt-emu", "claude-emu", "ollama-emu"}

    return {"anthropic sdk": anthropic_row, "anthropic x-api-key": x_api_key_row,
            "openai sdk": openai_row, "native": native_row}  # fmt: skip


def _assert_the_sdks_are_refused_the_revoked_key(
    gateway: Gateway,
    key: str,
    anthropic_client: anthropic.Anthropic,
    openai_client: openai.OpenAI,
) -> None:
    """Both SDKs get a 401 ``api_key_revoked`` that does not echo ``key``, and the audit
    rows of the refusals name no user, key or method."""
    with pytest.raises(anthropic.AuthenticationError) as refused_a:
        anthropic_client.messages.create(model="claude-emu", max_tokens=32, messages=PING_ANTHROPIC)
    body = refused_a.value.body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "api_key_revoked"
    assert key not in json.dumps(body)

    with pytest.raises(openai.AuthenticationError) as refused_o:
        openai_client.chat.completions.create(model="gpt-emu", messages=PING_OPENAI)
    body = refused_o.value.body
    assert isinstance(body, dict)
    assert body["code"] == "api_key_revoked"
    assert key not in json.dumps(body)

    for exc, endpoint in ((refused_a.value, "anthropic"), (refused_o.value, "openai")):
        assert exc.response.headers["www-authenticate"].startswith("Bearer")
        row = gateway.audit_row(exc.response.headers["x-request-id"])
        assert (row.status, row.error_code, row.endpoint) == (401, "api_key_revoked", endpoint)
        assert (row.user_id, row.key_id, row.auth_method) == (None, None, None)


def test_api_key_with_future_expiry_works(gateway: Gateway) -> None:
    key, key_id = create_key(gateway, "--expires", "30d")
    raw = gateway.openai(key).chat.completions.with_raw_response.create(
        model="gpt-emu", messages=[{"role": "user", "content": "ping"}]
    )
    row = gateway.audit_row(raw.headers["x-request-id"])
    assert (row.status, row.key_id, row.auth_method) == (200, key_id, "api_key")
