"""OPA server mode: decisions through OPA's Data API, against a local stand-in for OPA.

The stand-in (tests/policy/opa_server.py) runs in the test's event loop and
answers as OPA documents it: ``{"result": ...}``, ``{}`` for undefined, 400 and
500 error objects, and slow replies. Every way of not getting a usable
decision must deny (fail closed); 5xx, timeouts and refused connections are
retried ``OPA_RETRIES`` times, everything else is not.

``OPA_TEST_URL`` (e.g. ``http://127.0.0.1:8181``) runs one more test against a
real OPA server.
"""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llm_gateway.auth.principal import Principal
from llm_gateway.policy import PolicyService
from llm_gateway.policy.inputs import action_input
from llm_gateway.policy.opa import OpaPolicy
from llm_gateway.settings import load_settings
from tests.policy.opa_server import OpaServer, Reply

ALLOW_PATH = "/v1/data/llm/authz/allow"
DECISION_PATH = "/v1/data/llm/authz/decision"
FIXTURES = Path(__file__).parent / "fixtures"

MakePolicy = Callable[..., OpaPolicy]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def document(
    role: str = "user", tier: str | None = "premium", model: str = "gpt-4"
) -> dict[str, Any]:
    """A real input document, as the gateway builds it for a call."""
    principal = Principal(user_id="alice", role=role, tier=tier, team="research")
    return action_input(principal, "chat", model=model, client_ip="10.0.0.7", environment="test")


@pytest.fixture
async def opa() -> AsyncIterator[OpaServer]:
    async with OpaServer() as server:
        yield server


@pytest.fixture
async def make_policy(opa: OpaServer) -> AsyncIterator[MakePolicy]:
    """``make_policy(**options)``: an OpaPolicy on the stand-in, closed after the test."""
    made: list[OpaPolicy] = []

    def make(
        url: str | None = None,
        path: str = ALLOW_PATH,
        timeout_s: float = 2.0,
        retries: int = 1,
        cache_seconds: float = 0.0,
    ) -> OpaPolicy:
        policy = OpaPolicy(
            url or opa.url, path, timeout_s=timeout_s, retries=retries, cache_seconds=cache_seconds
        )
        made.append(policy)
        return policy

    yield make
    for policy in made:
        await policy.aclose()


# --- what is sent -----------------------------------------------------------------


async def test_the_request_is_a_post_of_the_input_in_an_envelope(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    doc = document()
    await make_policy().decide(doc)
    assert opa.count == 1
    received = opa.requests[0]
    assert (received.method, received.path) == ("POST", ALLOW_PATH)
    assert received.content_type == "application/json"
    assert received.body == {"input": doc}


async def test_the_policy_path_is_appended_to_the_url_without_a_double_slash(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    await make_policy(url=opa.url + "/", path=DECISION_PATH).decide(document())
    assert opa.requests[0].path == DECISION_PATH


# --- decisions --------------------------------------------------------------------


@pytest.mark.parametrize("allow", [True, False])
async def test_a_boolean_result_is_the_decision(
    opa: OpaServer, make_policy: MakePolicy, allow: bool
) -> None:
    opa.answer(Reply.result(allow))
    decision = await make_policy().decide(document())
    assert decision.allow is allow
    assert decision.error is None
    assert decision.revision == f"opa:{ALLOW_PATH}"
    assert decision.eval_us > 0


async def test_an_undefined_result_denies_with_a_reason(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    opa.answer(Reply.undefined())
    decision = await make_policy().decide(document())
    assert decision.allow is False
    assert any("undefined" in reason for reason in decision.reasons)
    assert opa.count == 1


async def test_an_object_decision_carries_reasons_and_obligations(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    opa.answer(Reply.result({
        "allow": True,
        "reasons": ["premium tier"],
        "deanonymize": True,
        "dlp_mode": "redact",
        "max_tokens": 512,
        "features": ["streaming", "tools"],
        "something_else": {"ignored": True},
    }))  # fmt: skip
    decision = await make_policy(path=DECISION_PATH).decide(document())
    assert decision.allow is True
    assert decision.error is None
    assert decision.reasons == ("premium tier",)
    obligations = decision.obligations
    assert obligations.deanonymize is True
    assert obligations.dlp_mode == "redact"
    assert obligations.max_tokens == 512
    assert obligations.features == frozenset({"streaming", "tools"})
    assert decision.permits("tools")
    assert not decision.permits("json_output")


async def test_an_object_denial_keeps_the_policys_reasons(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    reasons = ["model gpt-4 is not available to tier free", "feature tools is not available"]
    opa.answer(Reply.result({"allow": False, "reasons": reasons}))
    decision = await make_policy(path=DECISION_PATH).decide(document())
    assert decision.allow is False
    assert decision.error is None
    assert set(decision.reasons) == set(reasons)


async def test_an_object_without_obligations_permits_every_feature(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    opa.answer(Reply.result({"allow": True}))
    decision = await make_policy(path=DECISION_PATH).decide(document())
    assert decision.obligations.features is None
    assert decision.permits("tools")
    assert decision.obligations.deanonymize is False


@pytest.mark.parametrize(
    "result",
    [
        "allow",
        1,
        ["allow"],
        {"allow": "true"},
        {"allow": 1},
        {"allow": True, "reasons": [1, 2]},
        {"allow": True, "deanonymize": "yes"},
        {"allow": True, "dlp_mode": "shred"},
        {"allow": True, "max_tokens": 0},
        {"allow": True, "max_tokens": True},
        {"allow": True, "features": "tools"},
    ],
    ids=repr,
)
async def test_a_malformed_decision_fails_closed_without_a_retry(
    opa: OpaServer, make_policy: MakePolicy, result: Any
) -> None:
    opa.answer(Reply.result(result))
    decision = await make_policy(path=DECISION_PATH, retries=2).decide(document())
    assert decision.allow is False
    assert decision.error
    assert opa.count == 1


async def test_an_answer_that_is_not_json_fails_closed_without_a_retry(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    opa.answer(Reply.raw(b"<html>proxy says hello</html>"))
    decision = await make_policy(retries=2).decide(document())
    assert decision.allow is False
    assert decision.error is not None
    assert "not JSON" in decision.error
    assert opa.count == 1


# --- errors, retries and time-outs -----------------------------------------------


async def test_a_400_denies_with_the_opa_error_and_is_not_retried(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    opa.answer(Reply.bad_request("input document is not an object"))
    decision = await make_policy(retries=3).decide(document())
    assert decision.allow is False
    assert decision.error is not None
    assert "400" in decision.error
    assert "invalid_parameter" in decision.error
    assert opa.count == 1


@pytest.mark.parametrize("retries", [0, 1, 2])
async def test_a_500_is_retried_opa_retries_times_then_denies(
    opa: OpaServer, make_policy: MakePolicy, retries: int
) -> None:
    opa.answer(Reply.internal_error())
    decision = await make_policy(retries=retries).decide(document())
    assert decision.allow is False
    assert decision.error is not None
    assert "500" in decision.error
    assert opa.count == retries + 1


async def test_a_500_followed_by_an_answer_within_the_retries_allows(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    opa.answer(Reply.internal_error(), Reply.result(True))
    decision = await make_policy(retries=1).decide(document())
    assert decision.allow is True
    assert decision.error is None
    assert opa.count == 2


async def test_a_slow_reply_times_out_and_denies_in_bounded_time(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    """Each attempt is cut at the timeout: (retries + 1) attempts, plus the short back-off."""
    timeout_s, retries = 0.2, 1
    opa.answer(Reply.result(True, delay_s=5.0))
    started = time.monotonic()
    decision = await make_policy(timeout_s=timeout_s, retries=retries).decide(document())
    elapsed = time.monotonic() - started
    assert decision.allow is False
    assert decision.error is not None
    assert "in time" in decision.error
    assert opa.count == retries + 1
    assert elapsed < timeout_s * (retries + 1) + 0.6, elapsed


async def test_a_refused_connection_denies(make_policy: MakePolicy) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    decision = await make_policy(url=nobody, retries=1).decide(document())
    assert decision.allow is False
    assert decision.error is not None
    assert "unreachable" in decision.error
    assert time.monotonic() - started < 2.0


# --- the decision cache ----------------------------------------------------------


async def test_with_the_cache_the_same_input_is_asked_once(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    policy = make_policy(cache_seconds=30)
    doc = document()
    first, second = await policy.decide(doc), await policy.decide(copy.deepcopy(doc))
    assert first.allow is second.allow is True
    assert opa.count == 1


async def test_with_the_cache_a_different_input_is_asked(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    policy = make_policy(cache_seconds=30)
    opa.answer(lambda _path, doc: Reply.result(doc["request"]["model"] == "gpt-4"))
    assert (await policy.decide(document(model="gpt-4"))).allow is True
    assert (await policy.decide(document(model="claude-sonnet"))).allow is False
    assert opa.count == 2


async def test_the_cache_ignores_the_time_of_the_request(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    """``context.time`` differs on every call; keyed on it, the cache would never hit."""
    policy = make_policy(cache_seconds=30)
    morning, evening = document(), document()
    morning["context"]["time"] = "2025-01-01T08:00:00.000Z"
    evening["context"]["time"] = "2025-01-01T20:00:00.000Z"
    await policy.decide(morning)
    await policy.decide(evening)
    assert opa.count == 1


async def test_the_cache_does_not_ignore_the_rest_of_the_context(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    policy = make_policy(cache_seconds=30)
    inside, outside = document(), document()
    outside["context"]["client_ip"] = "203.0.113.9"
    await policy.decide(inside)
    await policy.decide(outside)
    assert opa.count == 2


async def test_cached_decisions_expire_after_the_ttl(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    policy = make_policy(cache_seconds=0.2)
    doc = document()
    opa.answer(Reply.result(True), Reply.result(False))
    assert (await policy.decide(doc)).allow is True
    assert (await policy.decide(doc)).allow is True  # from the cache
    await asyncio.sleep(0.3)
    assert (await policy.decide(doc)).allow is False  # asked again: the policy changed
    assert opa.count == 2


async def test_without_the_cache_every_decision_is_asked(
    opa: OpaServer, make_policy: MakePolicy
) -> None:
    policy = make_policy(cache_seconds=0)
    doc = document()
    for _ in range(3):
        await policy.decide(doc)
    assert opa.count == 3


@pytest.mark.parametrize(
    "failure",
    [Reply.internal_error(), Reply.bad_request(), Reply.result("yes")],
    ids=["500", "400", "malformed"],
)
async def test_a_failed_decision_is_not_cached(
    opa: OpaServer, make_policy: MakePolicy, failure: Reply
) -> None:
    policy = make_policy(cache_seconds=30, retries=0)
    doc = document()
    opa.answer(failure, Reply.result(True))
    assert (await policy.decide(doc)).error is not None
    decision = await policy.decide(doc)
    assert (decision.allow, decision.error) == (True, None)
    assert opa.count == 2


# --- PolicyService, configured from the environment -------------------------------


def service_from_env(**env: str) -> PolicyService:
    return PolicyService.from_settings(load_settings(env, env_file=None).policy)


async def test_the_service_uses_opa_when_opa_url_is_set(opa: OpaServer, tmp_path: Path) -> None:
    """POLICY_DIR is not read in OPA mode: it may name nothing at all."""
    service = service_from_env(
        OPA_URL=opa.url, OPA_POLICY_PATH=DECISION_PATH, POLICY_DIR=str(tmp_path / "nothing")
    )
    try:
        opa.answer(Reply.result({"allow": True, "max_tokens": 64}))
        decision = await service.decide(document())
        assert isinstance(service.engine, OpaPolicy)
        assert (decision.allow, decision.obligations.max_tokens) == (True, 64)
        assert opa.requests[0].path == DECISION_PATH
        assert service.revision == f"opa:{DECISION_PATH}"
        assert service.reload() is False  # nothing to reload: OPA holds the policy
    finally:
        await service.aclose()


async def test_the_service_takes_retries_timeout_and_cache_from_the_environment(
    opa: OpaServer,
) -> None:
    service = service_from_env(
        OPA_URL=opa.url, OPA_RETRIES="2", OPA_TIMEOUT_MS="150", POLICY_CACHE_SECONDS="30"
    )
    try:
        opa.answer(Reply.result(True, delay_s=5.0))
        started = time.monotonic()
        assert (await service.decide(document())).allow is False
        assert opa.count == 3
        assert time.monotonic() - started < 0.15 * 3 + 0.8
        opa.answer(Reply.result(True))
        await service.decide(document())
        await service.decide(document())
        assert opa.count == 4  # the first failure was not cached; the allow was
    finally:
        await service.aclose()


# --- a real OPA (opt-in) ----------------------------------------------------------


@pytest.fixture
async def real_opa() -> AsyncIterator[tuple[str, Callable[[str], Awaitable[None]]]]:
    """(OPA_TEST_URL, put(policy_text)); the policies put are deleted afterwards."""
    url = os.environ.get("OPA_TEST_URL", "").rstrip("/")
    if not url:
        pytest.skip("set OPA_TEST_URL (e.g. http://127.0.0.1:8181) to test against a real OPA")
    ids: list[str] = []
    async with aiohttp.ClientSession() as http:

        async def put(text: str) -> None:
            policy_id = f"llm-gateway-test-{uuid.uuid4().hex[:8]}"
            async with http.put(
                f"{url}/v1/policies/{policy_id}",
                data=text.encode(),
                headers={"content-type": "text/plain"},
            ) as response:
                assert response.status == 200, await response.text()
            ids.append(policy_id)

        yield url, put
        for policy_id in ids:
            async with http.delete(f"{url}/v1/policies/{policy_id}"):
                pass


async def test_a_real_opa_allows_and_denies_with_the_spec_policy(
    real_opa: tuple[str, Callable[[str], Awaitable[None]]],
) -> None:
    """The v1 rewrite: OPA 1.x refuses the specification's v0 text."""
    url, put = real_opa
    await put((FIXTURES / "spec_authz_v1.rego").read_text())
    policy = OpaPolicy(url, ALLOW_PATH, timeout_s=2.0, retries=1)
    try:
        admin = await policy.decide(document(role="admin", tier=None, model="anything"))
        premium = await policy.decide(document(tier="premium", model="claude-3-sonnet"))
        wrong_tier = await policy.decide(document(tier="premium", model="gpt-4"))
    finally:
        await policy.aclose()
    assert (admin.allow, admin.error) == (True, None)
    assert (premium.allow, premium.error) == (True, None)
    assert (wrong_tier.allow, wrong_tier.error) == (False, None)
