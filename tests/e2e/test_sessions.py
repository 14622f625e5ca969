"""Console logins (authorization code with PKCE) and service clients (client credentials).

The local identity provider (``tests/identity/idp.py``) is the gateway's
``OIDC_ISSUER`` and its ``SESSION_ISSUER``. The browser is played by an httpx
client that follows no redirect: each hop (gateway, IdP, gateway) is checked
on the way, and cookies are carried by hand, since a cookie jar would not send
a ``Secure`` cookie over the tests' plain http. The gateway is reached, as behind
a TLS proxy, at ``PUBLIC`` (its ``SESSION_REDIRECT_URL``): the IdP's redirect
there is sent to the test's gateway instead.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from llm_gateway.auth.sessions import Sealer, cookie_key
from llm_gateway.emulators import EmulatorServer
from llm_gateway.settings import AuthSettings
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.identity.idp import LocalIdp

SESSION_SECRET = "session-secret-" + "s" * 32
COOKIE = "llm_gateway_session"
FLOW = f"{COOKIE}_flow"
PUBLIC = "https://console.example"
PERSON = {"sub": "person-ada", "tier": "premium", "tenant": "acme", "groups": ["ops"]}


@pytest.fixture(scope="module")
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp().start()
    server.clients["console"] = "console-secret"
    server.clients["svc-reports"] = "svc-reports-secret"
    server.client_claims["svc-reports"] = {"tier": "premium", "tenant": "acme"}
    server.login_claims = dict(PERSON)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory, idp: LocalIdp
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("sessions")
    gateway = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        env={
            "OIDC_ISSUER": idp.issuer, "OIDC_AUDIENCE": "llm-gateway",
            "OIDC_TIMEOUT_SECONDS": "1", "SESSION_ISSUER": idp.issuer,
            "SESSION_CLIENT_ID": "console", "SESSION_CLIENT_SECRET": "console-secret",
            "SESSION_REDIRECT_URL": f"{PUBLIC}/auth/callback",
            "SESSION_SECRET": SESSION_SECRET,
        },
    )  # fmt: skip
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def _cookies(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


def _sealer(clock: Any = time.time) -> Sealer:
    return Sealer(cookie_key(AuthSettings(session_secret=SESSION_SECRET)), clock)


def _back(gw: Gateway, location: str) -> str:
    """The IdP's redirect to PUBLIC, sent to the test's gateway."""
    assert location.startswith(f"{PUBLIC}/auth/callback?"), location
    return gw.base_url + location.removeprefix(PUBLIC)


def _login(gw: Gateway) -> tuple[str, str, dict[str, list[str]]]:
    """Start a login: the flow cookie, the IdP's redirect back, and the authorize query."""
    started = httpx.get(f"{gw.base_url}/auth/login", follow_redirects=False)
    assert started.status_code == 302
    flow = _cookies(started)[FLOW]
    assert flow["httponly"]
    assert flow["secure"]
    assert (flow["samesite"].lower(), flow["path"]) == ("lax", "/auth/callback")
    authorize = started.headers["location"]
    back = httpx.get(authorize, follow_redirects=False)
    assert back.status_code == 302, back.text
    return flow.value, _back(gw, back.headers["location"]), parse_qs(urlsplit(authorize).query)


def _callback(url: str, flow: str | None) -> httpx.Response:
    headers = {"cookie": f"{FLOW}={flow}"} if flow is not None else {}
    return httpx.get(url, headers=headers, follow_redirects=False)


def _session(gw: Gateway, cookie: str | None) -> httpx.Response:
    headers = {"cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    return httpx.get(f"{gw.base_url}/auth/session", headers=headers)


def _code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    code = response.json()["error"]["code"]
    assert isinstance(code, str)
    return code


def test_a_person_logs_in_with_pkce_and_gets_a_session_cookie(gw: Gateway, idp: LocalIdp) -> None:
    flow, back, query = _login(gw)
    assert query["client_id"] == ["console"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{PUBLIC}/auth/callback"]
    assert "openid" in query["scope"][0].split()
    assert query["state"][0]
    assert query["nonce"][0]
    assert len(query["code_challenge"][0]) == 43
    done = _callback(back, flow)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/auth/session"
    # The code was exchanged with the verifier whose S256 hash the login sent.
    exchange = idp.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["code_verifier"]
    assert exchange["redirect_uri"] == query["redirect_uri"][0]
    jar = _cookies(done)
    session = jar[COOKIE]
    assert session["httponly"] is True
    assert session["secure"] is True
    assert session["samesite"].lower() == "lax"
    assert session["path"] == "/"
    assert session["max-age"] == "28800"
    assert jar[FLOW]["max-age"] == "0"  # the flow cookie is spent
    me = _session(gw, session.value)
    assert me.status_code == 200
    assert me.json() == {
        "user_id": "person-ada", "role": "user", "tier": "premium", "team": None,
        "tenant": "acme", "groups": ["ops"], "auth_method": "oidc",
    }  # fmt: skip
    # The same code cannot be spent twice.
    assert _code(_callback(back, flow)) == "code_exchange_failed"


def test_the_session_cookie_does_not_authenticate_the_api(gw: Gateway) -> None:
    flow, back, _ = _login(gw)
    cookie = _cookies(_callback(back, flow))[COOKIE].value
    answer = httpx.post(
        f"{gw.base_url}/v1/chat/completions", headers={"cookie": f"{COOKIE}={cookie}"},
        json={"model": "gpt-emu", "messages": [{"role": "user", "content": "hello"}]},
    )  # fmt: skip
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_credentials"


def test_no_tampered_or_expired_session_is_accepted(gw: Gateway) -> None:
    assert _code(_session(gw, None)) == "session_missing"
    flow, back, _ = _login(gw)
    cookie = _cookies(_callback(back, flow))[COOKIE].value
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    response = _session(gw, flipped)
    assert (response.status_code, _code(response)) == (401, "session_invalid")
    other_key = Sealer(b"k" * 32).seal("session", {"user_id": "mallory", "role": "admin"}, 60)
    assert _code(_session(gw, other_key)) == "session_invalid"
    # A flow cookie is no session, though sealed with the same key.
    assert _code(_session(gw, flow)) == "session_invalid"
    payload = {"user_id": "person-ada", "role": "user"}
    assert _session(gw, _sealer().seal("session", payload, 60)).status_code == 200
    expired = _sealer(lambda: time.time() - 3600).seal("session", payload, 60)
    response = _session(gw, expired)
    assert (response.status_code, _code(response)) == (401, "session_expired")


def test_a_wrong_state_verifier_or_nonce_is_refused(gw: Gateway) -> None:
    flow, back, query = _login(gw)
    assert _code(_callback(back, None)) == "invalid_state"
    forged_state = back.replace(query["state"][0], "forged")
    response = _callback(forged_state, flow)
    assert (response.status_code, _code(response)) == (400, "invalid_state")
    state, nonce = query["state"][0], query["nonce"][0]
    # The right state with another verifier: the IdP refuses the code.
    wrong_verifier = _sealer().seal(
        "flow", {"state": state, "nonce": nonce, "verifier": "x" * 43}, 60
    )
    response = _callback(back, wrong_verifier)
    assert (response.status_code, _code(response)) == (400, "code_exchange_failed")
    assert COOKIE not in _cookies(response)
    # A login too old to finish.
    old = _sealer(lambda: time.time() - 3600).seal("flow", {"state": state}, 60)
    assert _code(_callback(back, old)) == "login_expired"


def test_an_id_token_for_another_login_is_refused_by_its_nonce(gw: Gateway) -> None:
    started = httpx.get(f"{gw.base_url}/auth/login", follow_redirects=False)
    authorize = urlsplit(started.headers["location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query["code_challenge"] = challenge.rstrip(b"=").decode()
    back = _back(gw, httpx.get(
        f"{authorize.scheme}://{authorize.netloc}{authorize.path}", params=query,
        follow_redirects=False,
    ).headers["location"])  # fmt: skip
    replayed = _sealer().seal(
        "flow", {"state": query["state"], "nonce": "another-login", "verifier": verifier}, 60
    )
    response = _callback(back, replayed)
    assert (response.status_code, _code(response)) == (401, "invalid_nonce")


def test_the_idp_refusing_or_hanging_is_a_structured_error(gw: Gateway, idp: LocalIdp) -> None:
    idp.authorize_error = "access_denied"
    try:
        flow, back, _ = _login(gw)
    finally:
        idp.authorize_error = None
    response = _callback(back, flow)
    assert (response.status_code, _code(response)) == (400, "idp_error")
    flow, back, _ = _login(gw)
    idp.mode = "hang"
    try:
        response = _callback(back, flow)  # bounded by OIDC_TIMEOUT_SECONDS
    finally:
        idp.mode = "up"
    assert (response.status_code, _code(response)) == (503, "identity_provider_unavailable")


def test_logout_clears_the_cookie_and_names_the_idps_logout(gw: Gateway, idp: LocalIdp) -> None:
    flow, back, _ = _login(gw)
    cookie = _cookies(_callback(back, flow))[COOKIE].value
    out = httpx.post(f"{gw.base_url}/auth/logout", headers={"cookie": f"{COOKIE}={cookie}"})
    assert out.status_code == 200
    assert out.json() == {
        "logged_out": True, "end_session_url": f"{idp.issuer}/logout?client_id=console"
    }  # fmt: skip
    cleared = _cookies(out)[COOKIE]
    assert (cleared.value, cleared["max-age"], cleared["path"]) == ("", "0", "/")
    assert cleared["httponly"]
    assert cleared["secure"]


def test_a_service_gets_a_token_by_client_credentials_and_calls_the_gateway(
    gw: Gateway, idp: LocalIdp
) -> None:
    # What README's "Service clients" example does: the token endpoint from discovery,
    # the client's id and secret by HTTP Basic, then the token as the SDK's API key.
    discovery = httpx.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    answer = httpx.post(
        discovery["token_endpoint"], data={"grant_type": "client_credentials"},
        auth=("svc-reports", "svc-reports-secret"),
    )  # fmt: skip
    assert answer.status_code == 200
    token = answer.json()["access_token"]
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=token, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-emu", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.parse().choices[0].message.content
    row = gw.audit_row(raw.headers["x-request-id"])
    assert (row.user_id, row.tenant, row.auth_method) == ("svc-reports", "acme", "oidc")
    refused = httpx.post(
        discovery["token_endpoint"], data={"grant_type": "client_credentials"},
        auth=("svc-reports", "wrong"),
    )  # fmt: skip
    assert refused.status_code == 401


def test_without_session_issuer_there_is_no_login(gateway: Gateway) -> None:
    for method, path in (
        ("GET", "/auth/login"),
        ("GET", "/auth/session"),
        ("POST", "/auth/logout"),
    ):
        response = httpx.request(method, f"{gateway.base_url}{path}", follow_redirects=False)
        assert (response.status_code, _code(response)) == (404, "sessions_not_configured")


def test_openapi_documents_the_login_routes(gw: Gateway) -> None:
    paths = httpx.get(f"{gw.base_url}/openapi.json").json()["paths"]
    assert {"/auth/login", "/auth/callback", "/auth/session", "/auth/logout"} <= set(paths)
