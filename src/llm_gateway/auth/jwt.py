"""JWT bearer tokens: verification against an algorithm allow-list, and minting for development.

The algorithm is checked against the allow-list *before* PyJWT sees the token,
so ``alg: none`` and algorithm-confusion tricks (an HS256 token signed with an
RSA public key) are refused with their own error code. Each failure maps to a
stable code that says what was wrong without echoing the token.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from jwt.exceptions import InvalidSubjectError

from llm_gateway.auth.claims import principal_of
from llm_gateway.auth.principal import Principal
from llm_gateway.dev_secrets import DevSecret
from llm_gateway.errors import AuthenticationFailed
from llm_gateway.settings import AuthSettings

_CACHE_LIMIT = 10_000
# Which JWK can verify which algorithm: its key type, and for EC its curve.
_KEY_TYPES = {"RS": ("RSA", None), "PS": ("RSA", None), "EdDSA": ("OKP", None)}
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


DEV_SECRET_CHARS = 64  # secrets.token_urlsafe(48)


def dev_secret_path(settings: AuthSettings) -> Path:
    return settings.data_dir / "jwt_secret"


def uses_hmac(settings: AuthSettings) -> bool:
    return any(a.startswith("HS") for a in settings.jwt_allowed_algorithms)


def dev_secret(settings: AuthSettings) -> DevSecret | None:
    """The development secret file the verifier reads; None when it reads none."""
    if settings.jwt_secret or not uses_hmac(settings):
        return None
    return DevSecret(dev_secret_path(settings), DEV_SECRET_CHARS)


def resolve_hmac_secret(settings: AuthSettings) -> str:
    """JWT_SECRET, or a random development secret kept in ``DATA_DIR/jwt_secret``.

    The file lets ``llm-gateway token create`` and a running gateway agree on a
    secret on a fresh machine without anyone choosing a weak one.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    return DevSecret(dev_secret_path(settings), DEV_SECRET_CHARS).read_or_create(
        lambda: secrets.token_urlsafe(48)
    )


class JWTVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self.algorithms = frozenset(settings.jwt_allowed_algorithms)
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.hmac_secret = resolve_hmac_secret(settings) if uses_hmac(settings) else None
        self.public_key: bytes | None = None
        self.jwks: list[Jwk] | None = None
        if settings.jwt_public_key_file is not None:
            self.public_key = settings.jwt_public_key_file.read_bytes()
        if settings.jwt_jwks_file is not None:
            self.jwks = load_jwks(orjson.loads(settings.jwt_jwks_file.read_bytes()))
        self._options: jwt.types.Options = {"require": ["exp", "sub"]}
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        """The token's principal; verified tokens are remembered until they expire.

        Signature checks cost about 45 µs for HS256 and more for RSA; a client
        sends the same token on every call, so the result is cached, keyed by
        the exact token text and valid only until the token's own ``exp``.
        """
        cached = cached_principal(self._verified, token)
        if cached is not None:
            return cached
        principal, claims = self._verify(token)
        remember(self._verified, token, principal, claims)
        return principal

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not expired since, or None."""
        return cached_principal(self._verified, token)

    def _verify(self, token: str) -> tuple[Principal, dict[str, Any]]:
        header = header_of(token)
        algorithm = header["alg"]
        if algorithm not in self.algorithms:
            raise AuthenticationFailed(
                "the bearer token's signing algorithm is not allowed", code="algorithm_not_allowed"
            )
        keys = self._keys(algorithm, header.get("kid"))
        for i, key in enumerate(keys):
            try:
                claims = self._decode(token, key, algorithm)
            except AuthenticationFailed as exc:
                # Without a kid, each key that fits the algorithm is tried in turn.
                if exc.code != "invalid_signature" or i == len(keys) - 1:
                    raise
                continue
            return principal_of(claims), claims
        raise AuthenticationFailed(  # no key of the set fits the algorithm
            "the bearer token's signature is invalid", code="invalid_signature"
        )

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        return decode_claims(
            token, key, algorithm, audience=self.audience, issuer=self.issuer,
            leeway=self.leeway, options=self._options,
        )  # fmt: skip

    def _keys(self, algorithm: str, kid: str | None) -> list[Any]:
        """The keys that may have signed a token with this algorithm and key id."""
        if algorithm.startswith("HS"):
            return [self.hmac_secret]
        if self.jwks is None:
            return [self.public_key]
        if kid is not None:
            named = [k for k in self.jwks if k.kid == kid]
            if not named:
                raise AuthenticationFailed(
                    "the bearer token's key id is unknown", code="unknown_key_id"
                )
            return [k.key for k in named if k.fits(algorithm)]
        return [k.key for k in self.jwks if k.fits(algorithm)]


def cached_principal(cache: dict[str, tuple[Principal, float]], token: str) -> Principal | None:
    found = cache.get(token)
    if found is None:
        return None
    principal, expires = found
    if time.time() < expires:
        return principal
    cache.pop(token, None)
    return None


def remember(
    cache: dict[str, tuple[Principal, float]],
    token: str,
    principal: Principal,
    claims: dict[str, Any],
) -> None:
    """Cache a verified token until its ``exp`` (not before its ``nbf`` has passed)."""
    if claims.get("nbf") is None or claims["nbf"] <= time.time():
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[token] = (principal, float(claims["exp"]))


def decode_claims(
    token: str,
    key: Any,
    algorithm: str,
    *,
    audience: str | None,
    issuer: str | None,
    leeway: float,
    options: jwt.types.Options,
) -> dict[str, Any]:
    """The token's claims, verified; each failure as its stable 401 code."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed("the bearer token has expired", code="token_expired") from None
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
    except (jwt.PyJWTError, ValueError, TypeError):
        # Anything else a token can make the library raise is the token's fault.
        raise _malformed() from None


@dataclass(frozen=True, slots=True)
class Jwk:
    """One key of a JWKS, with what it may verify."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def fits(self, algorithm: str) -> bool:
        if self.alg is not None and self.alg != algorithm:
            return False
        if algorithm in _EC_CURVES:
            return self.kty == "EC" and (self.crv or "P-256") == _EC_CURVES[algorithm]
        kind = _KEY_TYPES.get(algorithm if algorithm == "EdDSA" else algorithm[:2])
        return kind is not None and self.kty == kind[0]


def load_jwks(document: Any) -> list[Jwk]:
    """The usable keys of a JWKS document (``{"keys": [...]}``); unusable ones are skipped."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("a JWKS document must be an object with a 'keys' array")
    loaded = []
    for entry in keys:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK.from_dict(entry).key
        except jwt.PyJWTError:
            continue
        kid, alg, crv = entry.get("kid"), entry.get("alg"), entry.get("crv")
        loaded.append(
            Jwk(
                kid=kid if isinstance(kid, str) else None,
                kty=str(entry.get("kty")),
                crv=crv if isinstance(crv, str) else None,
                alg=alg if isinstance(alg, str) else None,
                key=key,
            )
        )
    return loaded


def _malformed() -> AuthenticationFailed:
    return AuthenticationFailed("the bearer token is malformed", code="malformed_token")


def header_of(token: str) -> dict[str, Any]:
    """The token's header, checked before anything is verified.

    ``alg`` must be a string and ``kid`` absent or a string. A ``crit`` header
    lists extensions the verifier must understand or refuse the token (RFC 7515,
    section 4.1.11); the gateway understands none, so any ``crit`` is refused.
    """
    segment = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):  # binascii.Error and orjson's error are ValueErrors
        raise _malformed() from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise _malformed()
    if not isinstance(header.get("kid", ""), str):
        raise _malformed()
    if "crit" in header:
        raise AuthenticationFailed(
            "the bearer token names critical header extensions the gateway does not support",
            code="unsupported_critical_header",
        )
    return header


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


def mint_token(settings: AuthSettings, **claims: str | None) -> str:
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
