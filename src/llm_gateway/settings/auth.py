"""Authentication settings: JWT verification and minting, OIDC issuers, the API key cache."""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from llm_gateway.settings.declare import (
    Section,
    boolean,
    existing_file,
    integer,
    optional,
    seconds,
    text,
    var,
)
from llm_gateway.settings.files import DATA_DIR

JWT_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
     "ES256", "ES384", "ES512", "EdDSA"}
)  # fmt: skip


def algorithm(raw: str) -> str:
    value = raw.strip()
    if value not in JWT_ALGORITHMS:
        raise ValueError(f"expected one of {', '.join(sorted(JWT_ALGORITHMS))} ('none' never)")
    return value


def algorithms(raw: str) -> tuple[str, ...]:
    return tuple(algorithm(a) for a in raw.split(",") if a.strip())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def idp_url(raw: str) -> str:
    """An identity provider's URL: https, or plain http only to a loopback host."""
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value.rstrip("/")
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return value.rstrip("/")
    raise ValueError("expected an https:// URL (plain http:// only for a loopback host)")


_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def cookie_name(raw: str) -> str:
    value = raw.strip()
    if not value or not set(value) <= _TOKEN_CHARS:
        raise ValueError("expected a cookie name (letters, digits, - _ . and the like)")
    return value


def local_path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        raise ValueError("expected a path on the gateway, starting with one /")
    return value


@dataclass(frozen=True, slots=True)
class AuthSettings(Section):
    """How tokens are verified (and minted by ``llm-gateway token create``)."""

    TITLE: ClassVar[str] = "Authentication"

    jwt_secret: str | None = var(
        "JWT_SECRET", optional(text), None,
        "HMAC secret, at least 32 bytes; unset: a development secret kept in DATA_DIR/jwt_secret",
        secret=True,
    )  # fmt: skip
    jwt_algorithm: str = var(
        "JWT_ALGORITHM", algorithm, "HS256",
        "the algorithm of minted tokens, and the allow-list's default",
    )  # fmt: skip
    jwt_algorithms: tuple[str, ...] = var(
        "JWT_ALLOWED_ALGORITHMS", algorithms, (),
        "comma-separated allow-list (default: JWT_ALGORITHM); 'none' is never accepted",
    )  # fmt: skip
    jwt_expiration: int = var(
        "JWT_EXPIRATION", integer(1, 365 * 86400), 3600, "lifetime of minted tokens, in seconds"
    )
    jwt_public_key_file: Path | None = var(
        "JWT_PUBLIC_KEY_FILE", optional(existing_file), None,
        "a PEM public key, for RS*/ES*/PS*/EdDSA tokens",
    )  # fmt: skip
    jwt_jwks_file: Path | None = var(
        "JWT_JWKS_FILE", optional(existing_file), None, "a JWKS file (keys chosen by 'kid')"
    )
    jwt_issuer: str | None = var(
        "JWT_ISSUER", optional(text), None, "when set, tokens must carry this issuer"
    )
    jwt_audience: str | None = var(
        "JWT_AUDIENCE", optional(text), None, "when set, tokens must carry this audience"
    )
    jwt_leeway_seconds: int = var(
        "JWT_LEEWAY_SECONDS", integer(0, 3600), 30, "clock skew tolerated on exp, nbf and iat"
    )
    oidc_issuer: str | None = var(
        "OIDC_ISSUER", optional(idp_url), None,
        "a trusted OpenID Connect issuer: its keys are found through "
        "<issuer>/.well-known/openid-configuration (more in config/identity.yaml)",
    )  # fmt: skip
    oidc_audience: str | None = var(
        "OIDC_AUDIENCE", optional(text), None, "the audience OIDC_ISSUER's tokens must carry"
    )
    jwt_jwks_url: str | None = var(
        "JWT_JWKS_URL", optional(idp_url), None,
        "OIDC_ISSUER's JWKS, fetched from this URL instead of through discovery",
    )  # fmt: skip
    jwks_min_refresh_seconds: float = var(
        "JWKS_MIN_REFRESH_SECONDS", seconds, 30.0,
        "at most one JWKS fetch per issuer this often (an unknown kid asks for one)",
    )  # fmt: skip
    jwks_cache_seconds: float = var(
        "JWKS_CACHE_SECONDS", seconds, 300.0,
        "how long fetched keys are fresh without a Cache-Control max-age (one is honoured "
        "up to 24 h); stale keys keep working while a refetch fails",
    )  # fmt: skip
    oidc_timeout_seconds: float = var(
        "OIDC_TIMEOUT_SECONDS", seconds, 5.0,
        "the longest a discovery, JWKS or introspection call may take",
    )  # fmt: skip
    oidc_introspection_url: str | None = var(
        "OIDC_INTROSPECTION_URL", optional(idp_url), None,
        "an RFC 7662 endpoint: opaque (non-JWT) bearer tokens are introspected there",
    )  # fmt: skip
    oidc_client_id: str | None = var(
        "OIDC_CLIENT_ID", optional(text), None, "the gateway's client id at the introspection URL"
    )
    oidc_client_secret: str | None = var(
        "OIDC_CLIENT_SECRET", optional(text), None,
        "the gateway's client secret at the introspection URL (HTTP Basic)", secret=True,
    )  # fmt: skip
    introspection_cache_seconds: float = var(
        "INTROSPECTION_CACHE_SECONDS", seconds, 300.0,
        "an active introspected token is trusted for its remaining life, up to this long",
    )  # fmt: skip
    api_key_cache_seconds: float = var(
        "API_KEY_CACHE_SECONDS", seconds, 10.0,
        "how long a verified API key is trusted (a revocation takes this long)",
    )  # fmt: skip
    directory_cache_seconds: float = var(
        "DIRECTORY_CACHE_SECONDS", seconds, 10.0,
        "how long a caller's tier, team and role from the directory (and their own, their "
        "team's and tenant's budgets) are kept in process; another replica's admin change "
        "takes this long",
    )  # fmt: skip
    session_issuer: str | None = var(
        "SESSION_ISSUER", optional(idp_url), None,
        "people log in to the console here (/auth/login): a trusted issuer, OIDC_ISSUER or "
        "one of identity.yaml's; unset: no sessions",
    )  # fmt: skip
    session_client_id: str | None = var(
        "SESSION_CLIENT_ID", optional(text), None,
        "the console's client id at SESSION_ISSUER (its ID tokens' audience)",
    )  # fmt: skip
    session_client_secret: str | None = var(
        "SESSION_CLIENT_SECRET", optional(text), None,
        "the console's client secret at SESSION_ISSUER (HTTP Basic at its token endpoint)",
        secret=True,
    )  # fmt: skip
    session_redirect_url: str | None = var(
        "SESSION_REDIRECT_URL", optional(idp_url), None,
        "the gateway's /auth/callback as the browser reaches it, registered at the IdP",
    )  # fmt: skip
    session_secret: str | None = var(
        "SESSION_SECRET", optional(text), None,
        "at least 32 bytes; the session cookies' key is derived from it (unset: from "
        "JWT_SECRET, or its development file); changing it ends every session",
        secret=True,
    )  # fmt: skip
    session_lifetime_seconds: int = var(
        "SESSION_LIFETIME_SECONDS", integer(60, 7 * 86400), 8 * 3600,
        "how long a console session lasts after login",
    )  # fmt: skip
    session_cookie_name: str = var(
        "SESSION_COOKIE_NAME", cookie_name, "llm_gateway_session", "the session cookie's name"
    )
    session_cookie_secure: bool = var(
        "SESSION_COOKIE_SECURE", boolean, True,
        "false only for plain-http development on a loopback SESSION_REDIRECT_URL",
    )  # fmt: skip
    session_home: str = var(
        "SESSION_HOME", local_path, "/auth/session",
        "where the browser goes after login (a path on the gateway)",
    )  # fmt: skip
    session_scopes: str = var(
        "SESSION_SCOPES", text, "openid profile email", "the scopes asked for at login"
    )
    data_dir: Path = DATA_DIR.field()

    @property
    def jwt_allowed_algorithms(self) -> tuple[str, ...]:
        return self.jwt_algorithms or (self.jwt_algorithm,)

    def problems(self) -> list[str]:
        problems = []
        asymmetric = [a for a in self.jwt_allowed_algorithms if not a.startswith("HS")]
        if asymmetric and not (self.jwt_public_key_file or self.jwt_jwks_file):
            problems.append(
                f"JWT algorithms {', '.join(asymmetric)} need JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE"
            )
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < 32:
            problems.append(
                "JWT_SECRET: expected at least 32 bytes (RFC 7518 requires it for HS256)"
            )
        if self.oidc_issuer and not self.oidc_audience:
            problems.append("OIDC_ISSUER needs OIDC_AUDIENCE: the audience its tokens must carry")
        if self.oidc_audience and not self.oidc_issuer:
            problems.append("OIDC_AUDIENCE needs OIDC_ISSUER")
        if self.jwt_jwks_url and not self.oidc_issuer:
            problems.append(
                "JWT_JWKS_URL needs OIDC_ISSUER and OIDC_AUDIENCE: the issuer and audience "
                "its tokens must carry"
            )
        if self.oidc_introspection_url and not (self.oidc_client_id and self.oidc_client_secret):
            problems.append("OIDC_INTROSPECTION_URL needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
        if self.jwks_min_refresh_seconds > 3600:
            problems.append("JWKS_MIN_REFRESH_SECONDS: expected at most 3600")
        if not 0 < self.oidc_timeout_seconds <= 60:
            problems.append("OIDC_TIMEOUT_SECONDS: expected more than 0 and at most 60")
        if self.introspection_cache_seconds > 3600:
            problems.append("INTROSPECTION_CACHE_SECONDS: expected at most 3600")
        return problems + self._session_problems()

    def _session_problems(self) -> list[str]:
        problems = []
        if self.session_issuer and not (
            self.session_client_id and self.session_client_secret and self.session_redirect_url
        ):
            problems.append(
                "SESSION_ISSUER needs SESSION_CLIENT_ID, SESSION_CLIENT_SECRET and "
                "SESSION_REDIRECT_URL"
            )
        if self.session_secret is not None and len(self.session_secret.encode()) < 32:
            problems.append("SESSION_SECRET: expected at least 32 bytes")
        if not self.session_cookie_secure:
            host = urlsplit(self.session_redirect_url or "").hostname
            if not (host and urlsplit(self.session_redirect_url or "").scheme == "http"
                    and is_loopback(host)):  # fmt: skip
                problems.append(
                    "SESSION_COOKIE_SECURE=false is for plain-http development only: "
                    "SESSION_REDIRECT_URL must be an http:// loopback URL"
                )
        if "openid" not in self.session_scopes.split():
            problems.append("SESSION_SCOPES must include openid")
        return problems
