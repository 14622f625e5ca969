"""The session cookie's seal, its key, and the settings of console logins."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest

from llm_gateway.auth.jwt import resolve_hmac_secret
from llm_gateway.auth.sessions import Sealer, Sessions, cookie_key, pkce_pair
from llm_gateway.config.identity import IssuerEntry
from llm_gateway.settings import AuthSettings
from llm_gateway.transport import AiohttpTransport

SECRET = "s" * 40


def test_a_sealed_value_opens_only_for_its_purpose_key_and_lifetime() -> None:
    sealer = Sealer(b"k" * 32)
    value = sealer.seal("session", {"user_id": "ada"}, 60)
    assert "ada" not in base64.urlsafe_b64decode(value + "==").decode(errors="replace")
    assert sealer.open("session", value)["user_id"] == "ada"
    with pytest.raises(ValueError, match="invalid"):
        sealer.open("flow", value)
    with pytest.raises(ValueError, match="invalid"):
        Sealer(b"j" * 32).open("session", value)
    with pytest.raises(ValueError, match="invalid"):
        sealer.open("session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    with pytest.raises(ValueError, match="invalid"):
        sealer.open("session", "not base64 at all!")
    old = Sealer(b"k" * 32, lambda: time.time() - 120).seal("session", {"user_id": "ada"}, 60)
    with pytest.raises(ValueError, match="expired"):
        sealer.open("session", old)


def test_the_cookie_key_comes_from_session_secret_or_the_jwt_secret(tmp_path: Path) -> None:
    own = cookie_key(AuthSettings(session_secret=SECRET, jwt_secret="j" * 40))
    assert own != cookie_key(AuthSettings(jwt_secret="j" * 40))
    assert len(own) == 32
    # Without either, the JWT development secret in DATA_DIR is the root.
    settings = AuthSettings(data_dir=tmp_path)
    key = cookie_key(settings)
    assert (tmp_path / "jwt_secret").exists()
    assert key == cookie_key(AuthSettings(jwt_secret=resolve_hmac_secret(settings)))


def test_the_pkce_challenge_is_the_verifiers_s256() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


def _login_settings(**changes: object) -> AuthSettings:
    values: dict[str, object] = {
        "session_issuer": "https://sso.example", "session_client_id": "console",
        "session_client_secret": "secret", "session_redirect_url": "https://gw.example/auth/callback",
    }  # fmt: skip
    values.update(changes)
    return AuthSettings(**values)  # type: ignore[arg-type]


def test_login_settings_are_checked() -> None:
    assert _login_settings().problems() == []
    assert any(
        "SESSION_CLIENT_SECRET" in p for p in _login_settings(session_client_secret=None).problems()
    )
    assert any("SESSION_SECRET" in p for p in _login_settings(session_secret="short").problems())
    assert any("openid" in p for p in _login_settings(session_scopes="profile").problems())
    # Secure may be dropped only for plain-http development on a loopback address.
    insecure = _login_settings(session_cookie_secure=False)
    assert any("SESSION_COOKIE_SECURE" in p for p in insecure.problems())
    local = _login_settings(
        session_cookie_secure=False, session_redirect_url="http://127.0.0.1:8000/auth/callback"
    )
    assert local.problems() == []


async def test_the_login_issuer_must_be_a_trusted_one() -> None:
    transport = AiohttpTransport()
    try:
        assert Sessions.from_settings(AuthSettings(), [], transport) is None
        with pytest.raises(ValueError, match="not a trusted issuer"):
            Sessions.from_settings(_login_settings(), [], transport)
        entry = IssuerEntry(issuer="https://sso.example", audience="llm-gateway")
        sessions = Sessions.from_settings(
            _login_settings(session_secret=SECRET), [entry], transport
        )
        assert sessions is not None
        # ID tokens are the console's: their audience is its client id, not the API's.
        keyset = sessions.verifier.keysets["https://sso.example"]
        assert keyset.entry.audience == "console"
        await sessions.aclose()
    finally:
        await transport.close()
