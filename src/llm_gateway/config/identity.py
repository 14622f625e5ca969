"""``config/identity.yaml``: the OpenID Connect issuers the gateway trusts, and introspection.

Optional. Each issuer is trusted for its own audience, with its own claim
mapping; a token is verified by the issuer its ``iss`` names, or refused
(``untrusted_issuer``). ``OIDC_ISSUER``/``OIDC_AUDIENCE`` add one more issuer
with the default mapping::

    identity:
      issuers:
        - issuer: https://login.example.com/realms/acme     # exactly the tokens' iss
          audience: llm-gateway                             # the tokens' aud must name it
          jwks_url: https://login.example.com/keys          # optional: skips discovery
          algorithms: [RS256, ES256]                        # optional; never HMAC or none
          claims:                                           # optional; see auth.claims
            user: sub
            tenant: tid
            role: realm_access.roles
            roles: {gateway-admins: admin, gateway-users: user}
            tier: groups
            tiers: {gold: enterprise, silver: premium}
      introspection:                                        # opaque (non-JWT) tokens
        url: https://login.example.com/introspect
        client_id: llm-gateway
        client_secret: ${OIDC_CLIENT_SECRET}
        audience: llm-gateway                               # optional
        claims: {}

Every URL must be https, or http to a loopback host (a test or a sidecar).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_gateway.settings.auth import JWT_ALGORITHMS, idp_url

_NAME = Annotated[str, Field(min_length=1, max_length=200)]
_PATH = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^.\s]+(\.[^.\s]+)*$")]

#: What an issuer's tokens may be signed with, unless its entry says: every asymmetric one.
ASYMMETRIC = tuple(sorted(a for a in JWT_ALGORITHMS if not a.startswith("HS")))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimMapping(_Strict):
    """Which claims say who the caller is (dotted paths into the token's claims).

    ``roles`` and ``tiers`` map an IdP's group or role names to ours: the first
    entry of the table, in the file's order, that the claim's value (a string
    or a list of strings) names wins; none: ``default_role``/``default_tier``.
    Without a table the claim must be a string, taken as it is.
    """

    user: _PATH = "sub"
    tenant: _PATH | None = "tenant"
    team: _PATH | None = "team"
    role: _PATH | None = "role"
    tier: _PATH | None = "tier"
    groups: _PATH | None = "groups"
    environment: _PATH | None = "environment"
    roles: dict[_NAME, _NAME] | None = None
    tiers: dict[_NAME, _NAME] | None = None
    default_role: _NAME = "user"
    default_tier: _NAME | None = None


def _url(value: str) -> str:
    return idp_url(value)


class IssuerEntry(_Strict):
    issuer: Annotated[str, Field(min_length=1)]
    audience: Annotated[str, Field(min_length=1)]
    jwks_url: str | None = None
    algorithms: list[str] = list(ASYMMETRIC)
    claims: ClaimMapping = ClaimMapping()

    @field_validator("issuer", "jwks_url")
    @classmethod
    def _idp_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one algorithm")
        for name in value:
            if name not in ASYMMETRIC:
                raise ValueError(
                    f"{name!r} is not allowed for an issuer's keys (expected one of "
                    f"{', '.join(ASYMMETRIC)}; HMAC and 'none' never)"
                )
        return value


class IntrospectionEntry(_Strict):
    url: str
    client_id: _NAME
    client_secret: Annotated[str, Field(min_length=1)]
    audience: str | None = None
    claims: ClaimMapping = ClaimMapping()

    @field_validator("url")
    @classmethod
    def _idp_url(cls, value: str) -> str:
        return _url(value)


class Identity(_Strict):
    issuers: list[IssuerEntry] = []
    introspection: IntrospectionEntry | None = None

    @model_validator(mode="after")
    def _unique(self) -> Identity:
        seen: set[str] = set()
        for entry in self.issuers:
            if entry.issuer in seen:
                raise ValueError(f"issuer {entry.issuer!r} is listed twice")
            seen.add(entry.issuer)
        return self


class IdentityFile(_Strict):
    identity: Identity = Identity()
