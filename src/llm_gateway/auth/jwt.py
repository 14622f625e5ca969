"""JWT bearer tokens: verification against an algorithm allow-list, and minting for development.

The algorithm is checked against the allow-list *before* PyJWT sees the token,
so ``alg: none`` and algorithm-confusion tricks (an HS256 token signed with an
RSA public key) are refused with their own error code. Each failure maps to a
stable code that says what was wrong without echoing the token.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
from jwt.exceptions import InvalidSubjectError

from llm_gateway.auth.principal import Principal
from llm_gateway.dev_secrets import read_or_create_secret
from llm_gateway.errors import AuthenticationFailed
from llm_gateway.settings import Settings

_STRING_CLAIMS = ("role", "tier", "team", "tenant")
_CACHE_LIMIT = 10_000


def dev_secret_path(settings: Settings) -> Path:
    return settings.data_dir / "jwt_secret"


def resolve_hmac_secret(settings: Settings) -> str:
    """JWT_SECRET, or a random development secret kept in ``DATA_DIR/jwt_secret``.

    The file lets ``llm-gateway token create`` and a running gateway agree on a
    secret on a fresh machine without anyone choosing a weak one.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    return read_or_create_secret(dev_secret_path(settings), lambda: secrets.token_urlsafe(48))


class JWTVerifier:
    def __init__(self, settings: Settings) -> None:
        self.algorithms = frozenset(settings.jwt_allowed_algorithms)
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.hmac_secret = (
            resolve_hmac_secret(settings)
            if any(a.startswith("HS") for a in self.algorithms)
            else None
        )
        self.public_key: bytes | None = None
        self.jwks: jwt.PyJWKSet | None = None
        if settings.jwt_public_key_file is not None:
            self.public_key = settings.jwt_public_key_file.read_bytes()
        if settings.jwt_jwks_file is not None:
            self.jwks = jwt.PyJWKSet.from_dict(orjson.loads(settings.jwt_jwks_file.read_bytes()))
        self._options: jwt.types.Options = {"require": ["exp", "sub"]}
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        """The token's principal; verified tokens are remembered until they expire.

        Signature checks cost about 45 µs for HS256 and more for RSA; a client
        sends the same token on every call, so the result is cached, keyed by
        the exact token text and valid only until the token's own ``exp``.
        """
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                return principal
            del self._verified[token]
        principal, claims = self._verify(token)
        if claims.get("nbf") is None or claims["nbf"] <= time.time():
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = (principal, float(claims["exp"]))
        return principal

    def _verify(self, token: str) -> tuple[Principal, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthenticationFailed(
                "the bearer token is malformed", code="malformed_token"
            ) from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise AuthenticationFailed(
                "the bearer token's signing algorithm is not allowed", code="algorithm_not_allowed"
            )
        key = self._key(algorithm, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed(
                "the bearer token has expired", code="token_expired"
            ) from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed(
                "the bearer token is not valid yet", code="token_not_yet_valid"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed(
                "the bearer token's signature is invalid", code="invalid_signature"
            ) from None
        except (
            jwt.MissingRequiredClaimError,
            jwt.InvalidAudienceError,
            jwt.InvalidIssuerError,
            InvalidSubjectError,
            jwt.InvalidIssuedAtError,
        ) as e:
            raise AuthenticationFailed(
                f"the bearer token's claims are not acceptable: {_claim_problem(e)}",
                code="invalid_claims",
            ) from None
        except jwt.PyJWTError:
            raise AuthenticationFailed(
                "the bearer token is malformed", code="malformed_token"
            ) from None
        return _principal(claims), claims

    def _key(self, algorithm: str, kid: Any) -> Any:
        if algorithm.startswith("HS"):
            return self.hmac_secret
        if self.jwks is not None:
            for jwk in self.jwks.keys:
                if kid is None or jwk.key_id == kid:
                    return jwk.key
            raise AuthenticationFailed(
                "the bearer token's key id is unknown", code="unknown_key_id"
            )
        return self.public_key


def _claim_problem(exc: Exception) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, InvalidSubjectError):
        return "'sub' must be a string"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "'iat' must be a number"
    return "wrong issuer"


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    values = {name: claims.get(name) for name in _STRING_CLAIMS}
    groups = claims.get("groups", [])
    bad = [n for n, v in values.items() if v is not None and not isinstance(v, str)]
    if not isinstance(sub, str) or not sub:
        bad.append("sub")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        bad.append("groups")
    if bad:
        raise AuthenticationFailed(
            f"the bearer token's claims are not acceptable: {', '.join(bad)} must be strings",
            code="invalid_claims",
        )
    return Principal(
        user_id=str(sub),
        role=values["role"] or "user",
        tier=values["tier"],
        team=values["team"],
        tenant=values["tenant"],
        groups=tuple(groups),
        auth_method="jwt",
    )


def mint_token(settings: Settings, **claims: str | None) -> str:
    """A development token signed with the HMAC secret, valid for JWT_EXPIRATION seconds."""
    algorithm = settings.jwt_algorithm
    if not algorithm.startswith("HS"):
        raise ValueError(f"tokens can be minted only for HMAC algorithms, not {algorithm}")
    now = int(time.time())
    payload: dict[str, Any] = {k: v for k, v in claims.items() if v is not None}
    payload.update(iat=now, exp=now + settings.jwt_expiration)
    if settings.jwt_issuer:
        payload["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        payload["aud"] = settings.jwt_audience
    return jwt.encode(payload, resolve_hmac_secret(settings), algorithm=algorithm)
