"""Sessions for people: OpenID Connect login (authorization code with PKCE) and a cookie.

The console logs people in at ``SESSION_ISSUER``, one of the trusted issuers
(``OIDC_ISSUER`` or ``config/identity.yaml``'s), whose endpoints come from its
discovery document. :meth:`Sessions.login` makes the authorization URL with a
fresh ``state``, ``nonce`` and PKCE ``code_verifier`` (S256 challenge); the
three travel in a short-lived *flow cookie*, sealed like the session cookie, so
no server-side store is needed and any replica can take the callback.
:meth:`Sessions.callback` checks the ``state``, exchanges the code at the
token endpoint (client id and secret by HTTP Basic, the verifier, the redirect
URL; bounded by ``OIDC_TIMEOUT_SECONDS``), verifies the ID token with the OIDC
verifier (signature by the issuer's keys, ``iss``, ``aud`` = the client id,
``exp``) and its ``nonce``, and maps its claims to a Principal with the
issuer's claim mapping, as for a bearer token.

Cookies are sealed with AES-256-GCM (the payload is encrypted and
authenticated; its purpose, ``flow`` or ``session``, is the associated data, so
one cannot stand in for the other) and carry their own expiry. The key is
HMAC-SHA256(``SESSION_SECRET``, label), or, without it, derived the same way
from the JWT HMAC secret (``JWT_SECRET`` or its development file): changing
either ends every session. The session cookie is HttpOnly, Secure (unless
``SESSION_COOKIE_SECURE=false``, for plain-http loopback development only),
SameSite=Lax, Path=/.

The cookie identifies a person to the console's own endpoints only: it never
authenticates the chat or management API (those take a bearer credential), so
a page on another site cannot spend a logged-in person's budget (CSRF).

Codes: ``invalid_state`` (no flow cookie, or its state differs), ``login_expired``
(the flow cookie is too old), ``idp_error`` (the IdP sent the browser back with
an error), ``code_exchange_failed`` (the token endpoint refused the code),
``invalid_id_token``/``invalid_nonce``, ``session_missing``,
``session_invalid`` (tampered, or sealed with another key), ``session_expired``;
the IdP unreachable or slow: 503 ``identity_provider_unavailable``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from llm_gateway.auth.jwt import resolve_hmac_secret
from llm_gateway.auth.oidc import OidcVerifier, Timing, _DocumentError, fetch_json
from llm_gateway.auth.principal import Principal
from llm_gateway.config.identity import IssuerEntry
from llm_gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    IdentityUnavailable,
    InvalidRequest,
    UpstreamError,
)
from llm_gateway.settings.auth import AuthSettings, idp_url
from llm_gateway.transport import Transport, UpstreamRequest

FLOW_LIFETIME_S = 600  # the longest a person may take at the IdP's login page
KEY_LABEL = b"llm-gateway session cookie v1"
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024


def cookie_key(settings: AuthSettings) -> bytes:
    """The cookies' 32-byte AES key, derived from SESSION_SECRET or the JWT HMAC secret."""
    secret = settings.session_secret or resolve_hmac_secret(settings)
    return hmac.new(secret.encode(), KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    """Seals a JSON payload with an expiry into a cookie value, and opens it again."""

    def __init__(self, key: bytes, clock: Any = time.time) -> None:
        self._aead = AESGCM(key)
        self.clock = clock

    def seal(self, purpose: str, payload: Mapping[str, Any], lifetime_s: float) -> str:
        body = orjson.dumps({**payload, "exp": int(self.clock() + lifetime_s)})
        iv = os.urandom(12)
        return _b64(iv + self._aead.encrypt(iv, body, purpose.encode()))

    def open(self, purpose: str, value: str) -> dict[str, Any]:
        """The payload; ValueError ``invalid`` (tampered, another key) or ``expired``."""
        try:
            raw = _unb64(value)
            body = self._aead.decrypt(raw[:12], raw[12:], purpose.encode())
            payload = orjson.loads(body)
        except (ValueError, InvalidTag, orjson.JSONDecodeError):
            raise ValueError("invalid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
            raise ValueError("invalid")
        if payload["exp"] <= self.clock():
            raise ValueError("expired")
        return payload


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str
    end_session: str | None


@dataclass(frozen=True, slots=True)
class Login:
    url: str  # where the browser goes: the IdP's authorization endpoint
    flow_cookie: str  # sealed state, nonce and code verifier


def pkce_pair() -> tuple[str, str]:
    """A code verifier (RFC 7636 4.1: 43 characters here) and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


_PRINCIPAL_FIELDS = ("user_id", "role", "tier", "team", "tenant", "environment")


def _principal_payload(principal: Principal) -> dict[str, Any]:
    payload: dict[str, Any] = {k: getattr(principal, k) for k in _PRINCIPAL_FIELDS}
    payload["groups"] = list(principal.groups)
    return payload


def _principal_from(payload: Mapping[str, Any]) -> Principal:
    def text(name: str) -> str | None:
        value = payload.get(name)
        return value if isinstance(value, str) else None

    user, role, groups = text("user_id"), text("role"), payload.get("groups") or []
    if not user or not role or not isinstance(groups, list):
        raise AuthenticationFailed("the session cookie is invalid", code="session_invalid")
    return Principal(
        user_id=user, role=role, tier=text("tier"), team=text("team"), tenant=text("tenant"),
        groups=tuple(str(g) for g in groups), auth_method="oidc",
        environment=text("environment"),
    )  # fmt: skip


class Sessions:
    """Login, callback, session cookie and logout for one issuer (``SESSION_ISSUER``)."""

    def __init__(
        self, settings: AuthSettings, entry: IssuerEntry, transport: Transport, key: bytes
    ) -> None:
        assert settings.session_client_id
        assert settings.session_client_secret
        assert settings.session_redirect_url
        self.settings = settings
        self.client_id = settings.session_client_id
        self.client_secret = settings.session_client_secret
        self.redirect_url = settings.session_redirect_url
        self.entry = entry
        self.transport = transport
        self.timeout_s = settings.oidc_timeout_seconds
        # ID tokens are addressed to the client: their own verifier, audience = client id.
        self.verifier = OidcVerifier(
            [entry.model_copy(update={"audience": self.client_id})], transport,
            Timing(timeout_s=self.timeout_s, min_refresh_s=settings.jwks_min_refresh_seconds,
                   default_max_age_s=settings.jwks_cache_seconds,
                   leeway_s=settings.jwt_leeway_seconds),
        )  # fmt: skip
        self.sealer = Sealer(key)
        self._endpoints: Endpoints | None = None

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, issuers: list[IssuerEntry], transport: Transport
    ) -> Sessions | None:
        """The sessions SESSION_ISSUER asks for; None without it; ValueError if untrusted."""
        if not settings.session_issuer:
            return None
        entries = {e.issuer: e for e in issuers}
        if settings.oidc_issuer and settings.oidc_audience:
            entries.setdefault(
                settings.oidc_issuer,
                IssuerEntry(issuer=settings.oidc_issuer, audience=settings.oidc_audience,
                            jwks_url=settings.jwt_jwks_url),
            )  # fmt: skip
        entry = entries.get(settings.session_issuer)
        if entry is None:
            raise ValueError(
                f"SESSION_ISSUER {settings.session_issuer!r} is not a trusted issuer "
                "(OIDC_ISSUER or identity.yaml)"
            )
        return cls(settings, entry, transport, cookie_key(settings))

    # --- the IdP's endpoints ----------------------------------------------------

    async def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            url = f"{self.entry.issuer}/.well-known/openid-configuration"
            document = await self._bounded(fetch_json(
                self.transport, url, self.entry.issuer, self.timeout_s
            ))  # fmt: skip
            if not isinstance(document[0], dict) or document[0].get("issuer") != self.entry.issuer:
                raise AuthenticationFailed(
                    "the identity provider's discovery document does not name it",
                    code="discovery_invalid",
                )
            found = document[0]
            try:
                end = found.get("end_session_endpoint")
                self._endpoints = Endpoints(
                    authorization=idp_url(str(found.get("authorization_endpoint", ""))),
                    token=idp_url(str(found.get("token_endpoint", ""))),
                    end_session=idp_url(end) if isinstance(end, str) else None,
                )
            except ValueError:
                raise AuthenticationFailed(
                    "the identity provider's discovery document lacks https endpoints",
                    code="discovery_invalid",
                ) from None
        return self._endpoints

    async def _bounded(self, call: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except TimeoutError:
            raise IdentityUnavailable("the identity provider did not answer in time") from None
        except UpstreamError:
            raise IdentityUnavailable("the identity provider cannot be reached") from None
        except _DocumentError:
            raise IdentityUnavailable("the identity provider refused to answer") from None

    # --- login and callback ------------------------------------------------------

    async def login(self) -> Login:
        endpoints = await self.endpoints()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        query = urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_url, "scope": self.settings.session_scopes,
            "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })  # fmt: skip
        separator = "&" if "?" in endpoints.authorization else "?"
        flow = self.sealer.seal(
            "flow", {"state": state, "nonce": nonce, "verifier": verifier}, FLOW_LIFETIME_S
        )
        return Login(f"{endpoints.authorization}{separator}{query}", flow)

    async def callback(self, params: Mapping[str, str], flow_cookie: str | None) -> Principal:
        """The person the IdP's redirect names, once every check holds."""
        if "error" in params:
            raise InvalidRequest(
                f"the identity provider refused the login: {params['error'][:200]}",
                code="idp_error",
            )
        flow = self._flow(flow_cookie)
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode(), str(flow.get("state", "")).encode()):
            raise InvalidRequest("the login's state does not match", code="invalid_state")
        code = params.get("code")
        if not code:
            raise InvalidRequest("the callback carries no code", code="invalid_state")
        id_token = await self._exchange(code, str(flow.get("verifier", "")))
        try:
            principal = await self.verifier.verify(id_token, self.entry.issuer)
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(
                f"the ID token was refused: {exc.message}", code="invalid_id_token"
            ) from None
        nonce = principal.claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), str(flow.get("nonce", "")).encode()
        ):
            raise AuthenticationFailed("the ID token's nonce does not match", code="invalid_nonce")
        return principal

    def _flow(self, cookie: str | None) -> dict[str, Any]:
        if not cookie:
            raise InvalidRequest(
                "no login is under way in this browser (start at /auth/login)",
                code="invalid_state",
            )
        try:
            return self.sealer.open("flow", cookie)
        except ValueError as exc:
            if str(exc) == "expired":
                raise InvalidRequest(
                    "the login took too long; start again at /auth/login", code="login_expired"
                ) from None
            raise InvalidRequest("the login's state is invalid", code="invalid_state") from None

    async def _exchange(self, code: str, verifier: str) -> str:
        endpoints = await self.endpoints()
        basic = base64.b64encode(
            f"{_form(self.client_id)}:{_form(self.client_secret)}".encode()
        ).decode()
        body = urlencode({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.redirect_url, "code_verifier": verifier,
        }).encode()  # fmt: skip
        request = UpstreamRequest(
            url=endpoints.token, body=body, pool=self.entry.issuer, max_connections=4,
            headers={"content-type": "application/x-www-form-urlencoded",
                     "accept": "application/json", "authorization": f"Basic {basic}"},
            read_timeout_s=self.timeout_s, kind="identity", follow_redirects=False,
        )  # fmt: skip

        async def send() -> tuple[int, bytes]:
            response = await self.transport.send(request)
            return response.status, await response.read()

        status, raw = await self._bounded(send())
        answer: Any = None
        if len(raw) <= MAX_TOKEN_RESPONSE_BYTES:
            try:
                answer = orjson.loads(raw)
            except orjson.JSONDecodeError:
                answer = None
        if status != 200:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise InvalidRequest(
                f"the identity provider refused the code ({reason or f'HTTP {status}'})",
                code="code_exchange_failed",
            )
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise AuthenticationFailed(
                "the identity provider sent no ID token", code="invalid_id_token"
            )
        return token

    # --- the session cookie --------------------------------------------------------

    def issue(self, principal: Principal) -> str:
        return self.sealer.seal(
            "session", _principal_payload(principal), self.settings.session_lifetime_seconds
        )

    def principal(self, cookie: str | None) -> Principal:
        if not cookie:
            raise AuthenticationFailed("no session: log in at /auth/login", code="session_missing")
        try:
            payload = self.sealer.open("session", cookie)
        except ValueError as exc:
            if str(exc) == "expired":
                raise AuthenticationFailed(
                    "the session has expired: log in again", code="session_expired"
                ) from None
            raise AuthenticationFailed(
                "the session cookie is invalid", code="session_invalid"
            ) from None
        return _principal_from(payload)

    async def end_session_url(self) -> str | None:
        """The IdP's logout page, when it publishes one (None if it does not, or is down)."""
        try:
            endpoints = await self.endpoints()
        except GatewayError:
            return None
        if endpoints.end_session is None:
            return None
        return f"{endpoints.end_session}?{urlencode({'client_id': self.client_id})}"

    async def aclose(self) -> None:
        await self.verifier.aclose()


def _form(value: str) -> str:
    """RFC 6749 2.3.1: the client id and secret are form-encoded inside HTTP Basic."""
    return urlencode({"": value})[1:]
