"""Authentication: turn the caller's credential into a Principal, or refuse with 401.

A credential arrives as ``Authorization: Bearer <credential>`` or, as the
Anthropic SDK sends it, ``x-api-key: <credential>``, on every front door.
Keys issued by the gateway start with ``lsg_``; anything else is a token:
a JWT whose ``iss`` is a trusted OpenID Connect issuer is verified by
:mod:`.oidc` (against that issuer's published keys), any other JWT by
:mod:`.jwt` (the gateway's own secret or key files), and, when an
introspection endpoint is configured, a token that is not shaped like a JWT
is introspected (:mod:`.introspection`). With OIDC issuers configured, a JWT
naming an issuer that is neither trusted nor ``JWT_ISSUER`` is refused
(``untrusted_issuer``). With none configured, the path is the JWT one alone,
as fast as ever.
A request carries exactly one credential: two ``Authorization`` headers, two
``x-api-key`` headers, or one of each are refused as ambiguous (400) rather
than letting the first one win, which would let a forged header ride along
beside a valid one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llm_gateway.auth.api_keys import ApiKeyStore, is_api_key
from llm_gateway.auth.introspection import Introspector
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.auth.oidc import OidcVerifier, Timing, unverified_issuer
from llm_gateway.auth.principal import Principal
from llm_gateway.config.identity import (
    ClaimMapping,
    IdentityFile,
    IntrospectionEntry,
    IssuerEntry,
)
from llm_gateway.errors import AuthenticationFailed, InvalidRequest
from llm_gateway.settings import AuthSettings
from llm_gateway.transport import Transport

__all__ = [
    "Authenticator",
    "Credentials",
    "Principal",
    "credential_from",
    "identity_verifiers",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """Every value of the request's credential headers, as sent (a header may repeat)."""

    authorization: tuple[str, ...] = ()
    x_api_key: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, raw: Iterable[tuple[bytes, bytes]]) -> Credentials:
        """From a request's raw headers (ASGI's lower-cased name and value pairs)."""
        authorization: list[str] = []
        x_api_key: list[str] = []
        for name, value in raw:
            if name == b"authorization" and value.strip():
                authorization.append(value.decode("latin-1"))
            elif name == b"x-api-key" and value.strip():
                x_api_key.append(value.decode("latin-1"))
        return cls(tuple(authorization), tuple(x_api_key))

    @classmethod
    def bearer(cls, credential: str) -> Credentials:
        return cls(authorization=(f"Bearer {credential}",))


def credential_from(credentials: Credentials) -> str:
    """The one credential the request carries; 400 when it carries more than one."""
    if len(credentials.authorization) + len(credentials.x_api_key) > 1:
        raise InvalidRequest(
            "the request carries more than one credential (Authorization and x-api-key "
            "headers together count as two); send exactly one",
            code="ambiguous_credentials",
        )
    if credentials.authorization:
        scheme, _, value = credentials.authorization[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed(
                "the Authorization header must be 'Bearer <token or API key>'",
                code="malformed_credentials",
            )
        return value.strip()
    if credentials.x_api_key:
        return credentials.x_api_key[0].strip()
    raise AuthenticationFailed(
        "no credentials: send 'Authorization: Bearer <token or API key>' or 'x-api-key'",
        code="missing_credentials",
    )


class Authenticator:
    def __init__(
        self,
        jwt: JWTVerifier,
        keys: ApiKeyStore,
        oidc: OidcVerifier | None = None,
        introspection: Introspector | None = None,
    ) -> None:
        self.jwt = jwt
        self.keys = keys
        self.oidc = oidc
        self.introspection = introspection
        self._local_only = oidc is None and introspection is None

    async def authenticate(self, credentials: Credentials) -> Principal:
        credential = credential_from(credentials)
        if is_api_key(credential):
            return await self.keys.verify(credential)
        if self._local_only:
            return self.jwt.verify(credential)
        return await self._token(credential)

    async def _token(self, token: str) -> Principal:
        cached = self.jwt.cached(token) or (self.oidc.cached(token) if self.oidc else None)
        if cached is not None:
            return cached
        if token.count(".") != 2:
            if self.introspection is not None:
                return await self.introspection.verify(token)
            return self.jwt.verify(token)  # malformed_token
        if self.oidc is not None:
            iss = unverified_issuer(token)
            if iss is not None and (self.oidc.trusts(iss) or iss != self.jwt.issuer):
                return await self.oidc.verify(token, iss)
        return self.jwt.verify(token)

    async def aclose(self) -> None:
        if self.oidc is not None:
            await self.oidc.aclose()


def identity_verifiers(
    settings: AuthSettings, identity: IdentityFile, transport: Transport
) -> tuple[OidcVerifier | None, Introspector | None]:
    """The OIDC verifier and the introspector the settings and ``identity.yaml`` ask for.

    ``OIDC_ISSUER``/``OIDC_AUDIENCE`` (and ``JWT_JWKS_URL``) add one issuer, with the
    default claim mapping, to the file's list; ``OIDC_INTROSPECTION_URL`` (and its
    client settings) is the introspection endpoint unless the file names one.
    """
    issuers = list(identity.identity.issuers)
    if settings.oidc_issuer and settings.oidc_audience:
        if any(e.issuer == settings.oidc_issuer for e in issuers):
            raise ValueError(
                f"OIDC_ISSUER {settings.oidc_issuer!r} is also listed in identity.yaml: "
                "configure it in one place"
            )
        issuers.append(
            IssuerEntry(
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience,
                jwks_url=settings.jwt_jwks_url,
            )
        )
    timing = Timing(
        timeout_s=settings.oidc_timeout_seconds,
        min_refresh_s=settings.jwks_min_refresh_seconds,
        default_max_age_s=settings.jwks_cache_seconds,
        leeway_s=settings.jwt_leeway_seconds,
    )
    oidc = OidcVerifier(issuers, transport, timing) if issuers else None
    entry = identity.identity.introspection
    if entry is None and settings.oidc_introspection_url:
        entry = IntrospectionEntry(
            url=settings.oidc_introspection_url,
            client_id=settings.oidc_client_id or "",
            client_secret=settings.oidc_client_secret or "",
            audience=settings.oidc_audience,
            claims=ClaimMapping(),
        )
    introspection = None
    if entry is not None:
        introspection = Introspector(
            entry, transport, timeout_s=settings.oidc_timeout_seconds,
            cache_seconds=settings.introspection_cache_seconds,
            leeway_s=settings.jwt_leeway_seconds,
        )  # fmt: skip
    return oidc, introspection
