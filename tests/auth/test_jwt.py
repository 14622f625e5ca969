from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from llm_gateway.auth.jwt import JWTVerifier, mint_token
from llm_gateway.errors import AuthenticationFailed
from llm_gateway.settings import AuthSettings, load_settings

SECRET = "s" * 40


def _settings(tmp_path: Path, **env: str) -> AuthSettings:
    env = {"DATA_DIR": str(tmp_path), "JWT_SECRET": SECRET, **env}
    return load_settings(env, env_file=None).auth


def _token(
    claims: dict[str, object], key: object = SECRET, algorithm: str = "HS256", **kw: object
) -> str:
    base = {"sub": "alice", "role": "user", "tier": "premium", "exp": int(time.time()) + 60}
    return jwt.encode({**base, **claims}, key, algorithm=algorithm, **kw)  # type: ignore[arg-type]


def _code(verifier: JWTVerifier, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        verifier.verify(token)
    assert token not in info.value.message
    return info.value.code


def test_a_valid_token_becomes_a_principal(tmp_path: Path) -> None:
    verifier = JWTVerifier(_settings(tmp_path))
    p = verifier.verify(_token({"team": "red", "tenant": "acme", "groups": ["ml"]}))
    assert (p.user_id, p.role, p.tier, p.team, p.tenant, p.groups) == (
        "alice",
        "user",
        "premium",
        "red",
        "acme",
        ("ml",),
    )
    assert p.auth_method == "jwt"
    assert p.key_id is None


def test_minted_tokens_verify_and_expire_after_jwt_expiration(tmp_path: Path) -> None:
    settings = _settings(tmp_path, JWT_EXPIRATION="120")
    token = mint_token(settings, sub="bob", role="admin", tier="enterprise", team=None, tenant="t1")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120
    assert JWTVerifier(settings).verify(token).tenant == "t1"


def test_a_tokens_environment_claim_is_the_principals(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    staging = mint_token(settings, sub="ci", role="user", environment="staging")
    assert JWTVerifier(settings).verify(staging).environment == "staging"
    assert JWTVerifier(settings).verify(mint_token(settings, sub="dev")).environment is None


@pytest.mark.parametrize(
    ("token_factory", "code"),
    [
        (lambda: "not-a-jwt", "malformed_token"),
        (lambda: _token({"exp": int(time.time()) - 3600}), "token_expired"),
        (lambda: _token({}, key="x" * 40), "invalid_signature"),
        (lambda: _token({"exp": None}), "invalid_claims"),
        (lambda: _token({"role": 7}), "invalid_claims"),
        (lambda: _token({"nbf": int(time.time()) + 3600}), "token_not_yet_valid"),
        (lambda: _token({}, key="k" * 64, algorithm="HS512"), "algorithm_not_allowed"),
    ],
)
def test_each_failure_has_its_own_code(tmp_path: Path, token_factory, code: str) -> None:  # type: ignore[no-untyped-def]
    assert _code(JWTVerifier(_settings(tmp_path)), token_factory()) == code


def test_alg_none_is_refused_even_if_listed_nowhere_else(tmp_path: Path) -> None:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"sub": "root", "role": "admin", "exp": 2**40}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert _code(JWTVerifier(_settings(tmp_path)), unsigned) == "algorithm_not_allowed"


def test_hs256_token_signed_with_the_rsa_public_key_is_refused(tmp_path: Path) -> None:
    """Algorithm confusion: an RS256 deployment must refuse HMAC tokens keyed by its public key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "pub.pem"
    key_file.write_bytes(public_pem)
    verifier = JWTVerifier(
        _settings(tmp_path, JWT_ALGORITHM="RS256", JWT_PUBLIC_KEY_FILE=str(key_file))
    )
    assert verifier.verify(_token({}, key=private, algorithm="RS256")).user_id == "alice"
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = _token({}).split(".")[1].encode()
    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    forged = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    assert _code(verifier, forged) == "algorithm_not_allowed"


def test_es256_with_a_jwks_file_selects_the_key_by_kid(tmp_path: Path) -> None:
    key1, key2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks: dict[str, list[dict[str, Any]]] = {"keys": []}
    for kid, key in (("k1", key1), ("k2", key2)):
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwks["keys"].append({**jwk, "kid": kid, "use": "sig", "alg": "ES256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    verifier = JWTVerifier(_settings(tmp_path, JWT_ALGORITHM="ES256", JWT_JWKS_FILE=str(path)))
    token = _token({}, key=key2, algorithm="ES256", headers={"kid": "k2"})
    assert verifier.verify(token).user_id == "alice"
    wrong_kid = _token({}, key=key2, algorithm="ES256", headers={"kid": "k1"})
    assert _code(verifier, wrong_kid) == "invalid_signature"
    unknown = _token({}, key=key2, algorithm="ES256", headers={"kid": "k9"})
    assert _code(verifier, unknown) == "unknown_key_id"


def test_issuer_and_audience_are_enforced_when_configured(tmp_path: Path) -> None:
    verifier = JWTVerifier(_settings(tmp_path, JWT_ISSUER="https://idp", JWT_AUDIENCE="gateway"))
    good = _token({"iss": "https://idp", "aud": "gateway"})
    assert verifier.verify(good).user_id == "alice"
    assert _code(verifier, _token({"iss": "https://evil", "aud": "gateway"})) == "invalid_claims"
    assert _code(verifier, _token({"iss": "https://idp", "aud": "other"})) == "invalid_claims"


def test_without_jwt_secret_a_private_development_secret_is_shared(tmp_path: Path) -> None:
    settings = load_settings({"DATA_DIR": str(tmp_path)}, env_file=None).auth
    token = mint_token(settings, sub="carol", role="user", tier="free")
    secret_file = tmp_path / "jwt_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert len(secret_file.read_text().strip()) >= 32
    assert JWTVerifier(settings).verify(token).user_id == "carol"


def test_a_cached_token_still_expires(tmp_path: Path) -> None:
    verifier = JWTVerifier(_settings(tmp_path, JWT_LEEWAY_SECONDS="0"))
    token = _token({"exp": int(time.time()) + 1})
    assert verifier.verify(token).user_id == "alice"
    assert verifier.verify(token).user_id == "alice"  # served from the cache
    time.sleep(1.1)
    assert _code(verifier, token) == "token_expired"


def test_a_jwks_of_several_key_types_picks_the_key_that_fits(tmp_path: Path) -> None:
    """Without a kid, an ES256 token is verified by the EC key, not the RSA key listed first."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())),
        json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())),
    ]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    verifier = JWTVerifier(
        _settings(tmp_path, JWT_JWKS_FILE=str(jwks), JWT_ALLOWED_ALGORITHMS="ES256,RS256")
    )
    assert verifier.verify(_token({}, ec_key, "ES256")).user_id == "alice"
    assert verifier.verify(_token({}, rsa_key, "RS256")).user_id == "alice"
    other = ec.generate_private_key(ec.SECP256R1())
    assert _code(verifier, _token({}, other, "ES256")) == "invalid_signature"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({"alg": "HS256", "crit": ["exp"]}, "unsupported_critical_header"),
        ({"alg": "HS256", "kid": 5}, "malformed_token"),
        ({"alg": ["HS256"]}, "malformed_token"),
        ({"alg": {"a": 1}}, "malformed_token"),
        ([1], "malformed_token"),
    ],
)
def test_a_header_of_the_wrong_shape_is_a_401(tmp_path: Path, header: object, code: str) -> None:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    token = f"{part(header)}.{part({'sub': 'a', 'exp': int(time.time()) + 60})}.sig"
    assert _code(JWTVerifier(_settings(tmp_path)), token) == code
