"""OIDC issuers and introspection against a local identity provider (``tests/identity/idp.py``).

Each test builds the gateway's authenticator the way the runtime does
(``identity_verifiers`` from the settings and an ``identity.yaml``), with the
gateway's own pooled transport, and sends it tokens the local IdP signs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from llm_gateway.auth import Authenticator, Credentials, identity_verifiers
from llm_gateway.auth.jwt import JWTVerifier
from llm_gateway.auth.oidc import Timing, max_age
from llm_gateway.config.identity import IdentityFile
from llm_gateway.config.loader import ConfigError, load_config
from llm_gateway.errors import AuthenticationFailed, GatewayError, IdentityUnavailable
from llm_gateway.policy.inputs import user_document
from llm_gateway.settings import SettingsError, load_settings
from llm_gateway.transport import AiohttpTransport
from tests.identity.idp import LocalIdp

SECRET = "s" * 40
AUD = "llm-gateway"


@pytest.fixture
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def other_idp() -> Iterator[LocalIdp]:
    server = LocalIdp().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport()
    try:
        yield t
    finally:
        await t.close()


def authenticator(
    tmp_path: Path, transport: AiohttpTransport, identity: str = "", **env: str
) -> Authenticator:
    settings = load_settings(
        {"DATA_DIR": str(tmp_path), "JWT_SECRET": SECRET, **env}, env_file=None
    ).auth
    path = tmp_path / "identity.yaml"
    path.write_text(identity or "{}")
    file = load_config(IdentityFile, path)
    oidc, introspection = identity_verifiers(settings, file, transport)
    return Authenticator(JWTVerifier(settings), None, oidc, introspection)  # type: ignore[arg-type]


def env_issuer(idp: LocalIdp, **extra: str) -> dict[str, str]:
    return {"OIDC_ISSUER": idp.issuer, "OIDC_AUDIENCE": AUD, **extra}


async def login(auth: Authenticator, token: str) -> Any:
    return await auth.authenticate(Credentials.bearer(token))


async def code(auth: Authenticator, token: str) -> tuple[int, str]:
    with pytest.raises(GatewayError) as info:
        await login(auth, token)
    assert token not in info.value.message
    return info.value.status, info.value.code


# --- principals through each issuer's mapping ------------------------------------


async def test_two_issuers_with_their_own_mappings_give_the_configured_principals(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp, other_idp: LocalIdp
) -> None:
    identity = f"""
identity:
  issuers:
    - issuer: {idp.issuer}
      audience: {AUD}
      claims:
        user: preferred_username
        tenant: org.id
        role: realm_access.roles
        roles: {{gateway-admin: admin, gateway-user: user}}
        tier: realm_access.roles
        tiers: {{gold: enterprise, silver: premium}}
    - issuer: {other_idp.issuer}
      audience: api://gateway
      algorithms: [ES256]
      claims:
        user: oid
        tenant: tid
        role: roles
        roles: {{Gateway.Admin: admin}}
        default_role: viewer
        groups: groups
        tier: groups
        tiers: {{premium-users: premium}}
"""
    auth = authenticator(tmp_path, transport, identity)
    keycloak = idp.token(
        preferred_username="kc-alice", org={"id": "acme"},
        realm_access={"roles": ["offline_access", "silver", "gateway-user", "gateway-admin"]},
    )  # fmt: skip
    p = await login(auth, keycloak)
    assert (p.user_id, p.tenant, p.role, p.tier, p.auth_method) == (
        "kc-alice",
        "acme",
        "admin",
        "premium",
        "oidc",
    )  # fmt: skip  (the table's first entry the token names wins, not the token's order)
    assert p.claims["realm_access"]["roles"][0] == "offline_access"
    assert user_document(p)["claims"]["iss"] == idp.issuer
    entra = other_idp.token(
        audience="api://gateway", kid="ec-1", oid="0000-1111", tid="contoso",
        roles=["Reader"], groups=["premium-users", "eng"],
    )  # fmt: skip
    q = await login(auth, entra)
    assert (q.user_id, q.tenant, q.role, q.tier, q.groups) == (
        "0000-1111", "contoso", "viewer", "premium", ("premium-users", "eng"),
    )  # fmt: skip
    # The first issuer's audience is not the second's: each is checked against its own.
    assert await code(auth, other_idp.token(kid="ec-1", oid="x")) == (401, "invalid_claims")
    # The second issuer allows ES256 only.
    assert await code(auth, other_idp.token(audience="api://gateway", oid="x")) == (
        401, "algorithm_not_allowed",
    )  # fmt: skip


async def test_without_a_mapping_claims_are_read_as_for_the_gateways_own_tokens(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **env_issuer(idp))
    p = await login(
        auth, idp.token(kid="ec-1", sub="bob", role="admin", tier="free", team="t", tenant="x")
    )
    assert (p.user_id, p.role, p.tier, p.team, p.tenant) == ("bob", "admin", "free", "t", "x")
    # A list where a string is expected needs a table to say which item counts.
    assert await code(auth, idp.token(role=["admin"])) == (401, "invalid_claims")
    # The gateway's own HS256 tokens (no iss) still work beside the issuer's.
    own = jwt.encode({"sub": "local", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert (await login(auth, own)).auth_method == "jwt"


# --- keys: rotation, outages, bursts -----------------------------------------------


async def test_a_rotated_signing_key_is_picked_up_without_a_restart(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **env_issuer(idp, JWKS_MIN_REFRESH_SECONDS="0"))
    assert (await login(auth, idp.token())).user_id == "user-1"
    assert idp.jwks_fetches == 1
    idp.rotate("rsa-2", drop=("rsa-1",))
    assert (await login(auth, idp.token(kid="rsa-2", sub="after"))).user_id == "after"
    assert idp.jwks_fetches == 2
    idp.rotate("ec-2", "ES256", drop=("ec-1",))
    assert (await login(auth, idp.token(kid="ec-2", sub="ec"))).user_id == "ec"


async def test_stale_keys_are_refreshed_in_the_background_by_their_cache_headers(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    idp.cache_control = "public, max-age=0"
    auth = authenticator(tmp_path, transport, **env_issuer(idp, JWKS_MIN_REFRESH_SECONDS="0"))
    await login(auth, idp.token(sub="a"))
    assert idp.jwks_fetches == 1
    await login(auth, idp.token(sub="b"))  # stale: served, and a refetch starts
    for _ in range(200):
        if idp.jwks_fetches >= 2:
            break
        await asyncio.sleep(0.01)
    assert idp.jwks_fetches >= 2


def test_cache_headers_are_honoured_within_bounds() -> None:
    timing = Timing(min_refresh_s=30, default_max_age_s=300)
    assert max_age({}, timing) == 300
    assert max_age({"cache-control": "public, max-age=600"}, timing) == 600
    assert max_age({"cache-control": "max-age=1"}, timing) == 30
    assert max_age({"cache-control": "max-age=99999999"}, timing) == 86_400
    assert max_age({"cache-control": "no-store"}, timing) == 30


async def test_an_unreachable_idp_keeps_cached_keys_working_and_refuses_unknown_kids(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    env = env_issuer(idp, JWKS_MIN_REFRESH_SECONDS="0", JWKS_CACHE_SECONDS="0")
    auth = authenticator(tmp_path, transport, **env)
    assert (await login(auth, idp.token(sub="before"))).user_id == "before"
    idp.mode = "down"
    # A token never seen, signed by a known key: verified with the last good keys.
    assert (await login(auth, idp.token(sub="during"))).user_id == "during"
    assert (await login(auth, idp.token(kid="ec-1", sub="ec"))).user_id == "ec"
    idp.add_key("rsa-new")
    assert await code(auth, idp.token(kid="rsa-new")) == (401, "unknown_key_id")
    # A gateway that never had the keys cannot verify anything: 503, fail closed.
    fresh = authenticator(tmp_path, transport, **env)
    assert await code(fresh, idp.token()) == (503, "identity_provider_unavailable")
    idp.mode = "up"
    assert (await login(auth, idp.token(kid="rsa-new", sub="back"))).user_id == "back"


async def test_a_burst_of_unknown_kids_makes_at_most_one_jwks_fetch(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **env_issuer(idp))  # JWKS_MIN_REFRESH_SECONDS=30
    await login(auth, idp.token())
    assert idp.jwks_fetches == 1
    real = idp.keys["rsa-1"][1]
    forged = [idp.token(kid=f"made-up-{i}", key=real, alg="RS256") for i in range(100)]
    results = await asyncio.gather(*(code(auth, t) for t in forged))
    assert set(results) == {(401, "unknown_key_id")}
    assert idp.jwks_fetches <= 2  # the first unknown kid's refetch, shared by the burst
    await asyncio.gather(*(code(auth, t) for t in forged[:10]))
    assert idp.jwks_fetches <= 2  # and none again within JWKS_MIN_REFRESH_SECONDS


# --- what is refused, and with which code -----------------------------------------


def _unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


async def test_the_security_cases_are_refused_with_stable_codes(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp, other_idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **env_issuer(idp))
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUD, "sub": "root", "iat": now, "exp": now + 60}
    cases = {
        "untrusted issuer": (other_idp.token(), "untrusted_issuer"),
        "wrong audience": (idp.token(audience="someone-else"), "invalid_claims"),
        "alg none": (_unsigned(claims, {"alg": "none", "kid": "rsa-1"}), "algorithm_not_allowed"),
        "HS256 with a JWKS issuer": (
            jwt.encode(claims, "k" * 64, algorithm="HS256", headers={"kid": "rsa-1"}),
            "algorithm_not_allowed",
        ),
        "RS256 naming an EC key": (
            idp.token(kid="ec-1", key=idp.keys["rsa-1"][1], alg="RS256"),
            "key_type_mismatch",
        ),
        "another key": (
            idp.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "invalid_signature",
        ),
        "expired": (idp.token(exp=now - 3600, iat=now - 7200), "token_expired"),
        "issued in the future": (idp.token(iat=now + 3600), "token_not_yet_valid"),
        "no iat": (idp.token(iat=None), "invalid_claims"),
        "no sub": (idp.token(sub=None), "invalid_claims"),
    }
    for name, (token, expected) in cases.items():
        assert await code(auth, token) == (401, expected), name


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>not json</html>", "discovery_invalid"),
        (b'{"issuer": "https://evil.example", "jwks_uri": "https://evil.example/k"}',
         "discovery_issuer_mismatch"),
        (b"[1, 2]", "discovery_invalid"),
    ],
)  # fmt: skip
async def test_a_bad_discovery_document_is_refused(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp, body: bytes, expected: str
) -> None:
    idp.discovery_body = body
    auth = authenticator(tmp_path, transport, **env_issuer(idp))
    assert await code(auth, idp.token()) == (401, expected)
    assert idp.jwks_fetches == 0


async def test_a_discovery_document_naming_a_plain_http_jwks_elsewhere_is_refused(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    idp.discovery_body = json.dumps(
        {"issuer": idp.issuer, "jwks_uri": "http://keys.example.com/jwks"}
    ).encode()
    auth = authenticator(tmp_path, transport, **env_issuer(idp))
    assert await code(auth, idp.token()) == (401, "discovery_invalid")


async def test_a_jwks_url_skips_discovery(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **env_issuer(idp, JWT_JWKS_URL=f"{idp.issuer}/jwks"))
    assert (await login(auth, idp.token())).user_id == "user-1"
    assert (idp.discovery_fetches, idp.jwks_fetches) == (0, 1)


async def test_a_jwks_that_redirects_is_not_followed(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **env_issuer(idp, JWT_JWKS_URL=f"{idp.issuer}/moved"))
    assert await code(auth, idp.token()) == (503, "identity_provider_unavailable")
    assert idp.jwks_fetches == 1


async def test_an_idp_that_hangs_is_bounded_by_the_timeout(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    env = env_issuer(idp, OIDC_TIMEOUT_SECONDS="0.3", JWKS_MIN_REFRESH_SECONDS="0")
    auth = authenticator(tmp_path, transport, **env)
    await login(auth, idp.token())
    idp.mode = "hang"
    idp.add_key("rsa-late")
    assert await code(auth, idp.token(kid="rsa-late")) == (401, "unknown_key_id")
    assert (await login(auth, idp.token(sub="known-key"))).user_id == "known-key"
    fresh = authenticator(tmp_path, transport, **env)
    assert await code(fresh, idp.token()) == (503, "identity_provider_unavailable")


# --- opaque tokens ------------------------------------------------------------------


def introspection_env(idp: LocalIdp, **extra: str) -> dict[str, str]:
    return {
        "OIDC_INTROSPECTION_URL": f"{idp.issuer}/introspect",
        "OIDC_CLIENT_ID": idp.client_id,
        "OIDC_CLIENT_SECRET": idp.client_secret,
        **extra,
    }


async def test_introspected_opaque_tokens_work_and_are_cached(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **introspection_env(idp))
    token = idp.opaque_token(sub="svc", role="admin", tenant="acme", scope="llm")
    p = await login(auth, token)
    assert (p.user_id, p.role, p.tenant, p.auth_method) == ("svc", "admin", "acme", "introspection")
    assert p.claims["scope"] == "llm"
    assert (await login(auth, token)).user_id == "svc"
    assert idp.introspections == 1
    assert await code(auth, "not-a-token-the-idp-issued") == (401, "token_inactive")
    expired = idp.opaque_token(exp=int(time.time()) - 3600)
    assert await code(auth, expired) == (401, "token_expired")


async def test_introspection_with_a_mapping_and_an_audience_from_identity_yaml(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    identity = f"""
identity:
  introspection:
    url: {idp.issuer}/introspect
    client_id: {idp.client_id}
    client_secret: ${{TEST_IDP_SECRET:-{idp.client_secret}}}
    audience: {AUD}
    claims: {{user: username, role: groups, roles: {{ops: admin}}}}
"""
    auth = authenticator(tmp_path, transport, identity)
    good = idp.opaque_token(username="carol", groups=["eng", "ops"], aud=[AUD, "other"])
    assert ((p := await login(auth, good)).user_id, p.role) == ("carol", "admin")
    assert await code(auth, idp.opaque_token(username="d", aud="other")) == (401, "invalid_claims")


async def test_introspection_fails_closed(
    tmp_path: Path, transport: AiohttpTransport, idp: LocalIdp
) -> None:
    auth = authenticator(tmp_path, transport, **introspection_env(idp, OIDC_TIMEOUT_SECONDS="0.3"))
    token = idp.opaque_token()
    idp.mode = "down"
    assert await code(auth, token) == (503, "introspection_unavailable")
    idp.mode = "hang"
    assert await code(auth, token) == (503, "introspection_unavailable")
    idp.mode = "up"
    wrong = authenticator(
        tmp_path, transport, **introspection_env(idp, OIDC_CLIENT_SECRET="not-the-secret")
    )
    assert await code(wrong, token) == (503, "introspection_unavailable")
    assert (await login(auth, token)).user_id == "opaque-user"


# --- configuration ---------------------------------------------------------------------


def test_settings_refuse_half_an_issuer_and_plain_http_to_another_host() -> None:
    for env, said in (
        ({"OIDC_ISSUER": "https://idp.example"}, "OIDC_ISSUER needs OIDC_AUDIENCE"),
        ({"OIDC_ISSUER": "http://idp.example", "OIDC_AUDIENCE": "a"}, "https:// URL"),
        ({"JWT_JWKS_URL": "https://idp.example/k"}, "JWT_JWKS_URL needs OIDC_ISSUER"),
        ({"OIDC_INTROSPECTION_URL": "https://idp.example/i"}, "needs OIDC_CLIENT_ID"),
    ):
        with pytest.raises(SettingsError) as info:
            load_settings(env, env_file=None)
        assert said in str(info.value)
    ok = load_settings({"OIDC_ISSUER": "http://127.0.0.1:9/", "OIDC_AUDIENCE": "a"}, env_file=None)
    assert ok.auth.oidc_issuer == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("identity:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n"
         "      algorithms: [HS256]\n", ":5: identity.issuers.0.algorithms"),
        ("identity:\n  issuers:\n    - issuer: http://a.example\n      audience: x\n",
         ":3: identity.issuers.0.issuer"),
        ("identity:\n  issuers:\n    - issuer: https://a.example\n", "audience"),
        ("identity:\n  issuers:\n    - {issuer: 'https://a.example', audience: x}\n"
         "    - {issuer: 'https://a.example', audience: y}\n", "listed twice"),
        ("identity:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n"
         "      claims: {rol: roles}\n", ":5: identity.issuers.0.claims.rol"),
    ],
)  # fmt: skip
def test_identity_yaml_errors_name_the_file_line_and_field(
    tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "identity.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(IdentityFile, path)
    assert said in str(info.value)
    assert str(path) in str(info.value)


def test_the_same_issuer_in_the_settings_and_the_file_is_an_error(tmp_path: Path) -> None:
    settings = load_settings(
        {"OIDC_ISSUER": "https://a.example", "OIDC_AUDIENCE": "x"}, env_file=None
    ).auth
    file = IdentityFile.model_validate(
        {"identity": {"issuers": [{"issuer": "https://a.example", "audience": "x"}]}}
    )
    with pytest.raises(ValueError, match="configure it in one place"):
        identity_verifiers(settings, file, AiohttpTransport())


def test_an_api_keys_principal_has_no_claims() -> None:
    from llm_gateway.auth.principal import Principal

    assert user_document(Principal("svc", "user", auth_method="api_key"))["claims"] == {}


def test_oversized_claims_are_bounded() -> None:
    from llm_gateway.auth.claims import MAX_CLAIMS_BYTES, principal_of

    p = principal_of({"sub": "a", "big": "x" * (MAX_CLAIMS_BYTES + 1), "small": 1})
    assert p.claims == {"sub": "a", "small": 1}


def test_errors_are_the_documented_classes() -> None:
    assert IdentityUnavailable.status == 503
    assert AuthenticationFailed.status == 401


def test_the_shipped_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "identity.example.yaml"
    identity = load_config(IdentityFile, example, environ={}).identity
    assert [e.audience for e in identity.issuers] == [
        "llm-gateway", "api://llm-gateway", "api://llm-gateway",
    ]  # fmt: skip
    assert identity.introspection is not None


def test_check_config_refuses_oidc_issuer_listed_in_the_file_too(tmp_path: Path) -> None:
    from llm_gateway.cli import checked_config
    from tests.e2e.conftest import routing_yaml

    config = tmp_path / "config"
    config.mkdir()
    (config / "routing_policies.yaml").write_text(routing_yaml("http://127.0.0.1:1"))
    (config / "identity.yaml").write_text(
        "identity:\n  issuers:\n    - {issuer: 'https://a.example', audience: x}\n"
    )
    env = {"CONFIG_DIR": str(config), "DATA_DIR": str(tmp_path), "JWT_SECRET": SECRET}
    settings = load_settings(env, env_file=None)
    assert checked_config(settings) is not None
    both = load_settings({**env, "OIDC_ISSUER": "https://a.example", "OIDC_AUDIENCE": "x"},
                         env_file=None)  # fmt: skip
    assert checked_config(both) is None
