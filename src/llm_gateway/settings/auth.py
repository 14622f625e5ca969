"""Authentication settings: JWT verification and minting, the API key cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from llm_gateway.settings.declare import (
    Section,
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
    api_key_cache_seconds: float = var(
        "API_KEY_CACHE_SECONDS", seconds, 10.0,
        "how long a verified API key is trusted (a revocation takes this long)",
    )  # fmt: skip
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
        return problems
