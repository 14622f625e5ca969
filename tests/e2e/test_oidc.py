"""OIDC tokens and introspected opaque tokens through the real gateway and the OpenAI SDK.

A local identity provider (``tests/identity/idp.py``) is trusted twice: as
``OIDC_ISSUER`` (the default claim mapping) and, on another port, through
``config/identity.yaml`` with a mapping of its own; its introspection endpoint
checks opaque tokens. The SDK sends each token as its API key, exactly as an
application would send the access token its IdP gave it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.identity.idp import LocalIdp

AUD = "llm-gateway"


@pytest.fixture(scope="module")
def idps() -> Iterator[tuple[LocalIdp, LocalIdp]]:
    first, second = LocalIdp().start(), LocalIdp().start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture(scope="module")
def oidc_gateway(
    emulator: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
    idps: tuple[LocalIdp, LocalIdp],
) -> Iterator[Gateway]:
    env_idp, file_idp = idps
    tmp = tmp_path_factory.mktemp("oidc")
    config = tmp / "config"
    config.mkdir()
    (config / "identity.yaml").write_text(f"""
identity:
  issuers:
    - issuer: {file_idp.issuer}
      audience: api://gateway
      claims:
        user: oid
        tenant: tid
        role: roles
        roles: {{Gateway.Admin: admin}}
        tier: groups
        tiers: {{llm-premium: premium}}
""")
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        env={
            "OIDC_ISSUER": env_idp.issuer, "OIDC_AUDIENCE": AUD,
            "OIDC_INTROSPECTION_URL": f"{env_idp.issuer}/introspect",
            "OIDC_CLIENT_ID": env_idp.client_id, "OIDC_CLIENT_SECRET": env_idp.client_secret,
            "OIDC_TIMEOUT_SECONDS": "1",
        },
    )  # fmt: skip
    try:
        yield gw
    finally:
        stop_gateway(gw)


def _chat(gateway: Gateway, token: str) -> tuple[str, str]:
    raw = gateway.openai(token).chat.completions.with_raw_response.create(
        model="gpt-emu", messages=[{"role": "user", "content": "hello"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    return raw.headers["x-request-id"], completion.choices[0].message.content


def test_oidc_tokens_of_two_issuers_through_the_openai_sdk(
    oidc_gateway: Gateway, idps: tuple[LocalIdp, LocalIdp]
) -> None:
    env_idp, file_idp = idps
    token = env_idp.token(sub="oidc-alice", tier="premium", tenant="acme")
    request_id, _ = _chat(oidc_gateway, token)
    row = oidc_gateway.audit_row(request_id)
    assert (row.user_id, row.tenant, row.auth_method, row.status) == (
        "oidc-alice", "acme", "oidc", 200,
    )  # fmt: skip
    entra = file_idp.token(
        audience="api://gateway", kid="ec-1", oid="0000-bob", tid="contoso",
        roles=["Gateway.Admin"], groups=["eng", "llm-premium"],
    )  # fmt: skip
    row = oidc_gateway.audit_row(_chat(oidc_gateway, entra)[0])
    assert (row.user_id, row.tenant, row.auth_method) == ("0000-bob", "contoso", "oidc")
    # Mapped to no tier, the caller is refused by the policy, not by authentication.
    plain = file_idp.token(audience="api://gateway", oid="0000-carol", groups=["eng"])
    with pytest.raises(openai.PermissionDeniedError):
        _chat(oidc_gateway, plain)


def test_oidc_refusals_reach_the_sdk_as_401_with_their_codes(
    oidc_gateway: Gateway, idps: tuple[LocalIdp, LocalIdp]
) -> None:
    env_idp, _ = idps
    stranger = LocalIdp()  # never started: its tokens name an issuer nobody trusts
    stranger.port = 1
    cases = {
        stranger.token(): "untrusted_issuer",
        env_idp.token(audience="other"): "invalid_claims",
        env_idp.token(kid="ec-1", key=env_idp.keys["rsa-1"][1], alg="RS256"): "key_type_mismatch",
    }
    for token, expected in cases.items():
        with pytest.raises(openai.AuthenticationError) as info:
            _chat(oidc_gateway, token)
        assert info.value.code == expected


def test_an_opaque_token_is_introspected_once_and_fails_closed(
    oidc_gateway: Gateway, idps: tuple[LocalIdp, LocalIdp]
) -> None:
    env_idp, _ = idps
    token = env_idp.opaque_token(sub="svc-opaque", tier="premium", aud=AUD)
    before = env_idp.introspections
    row = oidc_gateway.audit_row(_chat(oidc_gateway, token)[0])
    assert (row.user_id, row.auth_method) == ("svc-opaque", "introspection")
    _chat(oidc_gateway, token)
    assert env_idp.introspections == before + 1  # the second call was served from the cache
    with pytest.raises(openai.AuthenticationError) as info:
        _chat(oidc_gateway, "an-opaque-token-nobody-issued")
    assert info.value.code == "token_inactive"
    # OIDC_AUDIENCE is the introspected tokens' audience too: an answer without it is refused.
    with pytest.raises(openai.AuthenticationError) as info:
        _chat(oidc_gateway, env_idp.opaque_token(sub="elsewhere", tier="premium"))
    assert info.value.code == "invalid_claims"
    env_idp.mode = "down"
    try:
        with pytest.raises(openai.InternalServerError) as failed:
            _chat(oidc_gateway, env_idp.opaque_token(sub="new", aud=AUD))
        assert failed.value.status_code == 503
        assert failed.value.code == "introspection_unavailable"
        assert _chat(oidc_gateway, token)[1]  # the cached one still works
    finally:
        env_idp.mode = "up"


def test_identity_yaml_is_checked_at_start_up(tmp_path: Path, emulator: EmulatorServer) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "identity.yaml").write_text(
        "identity:\n  issuers:\n    - issuer: https://idp.example\n      audience: a\n"
        "      algorithms: [HS256]\n"
    )
    with pytest.raises(RuntimeError) as info:
        start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gateway.db")
    assert "identity.yaml:5" in str(info.value)
