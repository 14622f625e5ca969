"""The OPA client sends through the transport it is given: the app's, in a running gateway.

A recording transport wraps the real one, so these tests see each request the
OPA client hands over and still reach the OPA stand-in through real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llm_gateway.auth.principal import Principal
from llm_gateway.errors import UpstreamUnreachable
from llm_gateway.policy import PolicyService
from llm_gateway.policy.inputs import action_input
from llm_gateway.policy.opa import OpaPolicy
from llm_gateway.settings import load_settings
from llm_gateway.transport import AiohttpTransport, UpstreamRequest, UpstreamResponse
from tests.policy.opa_server import OpaServer, Reply

ALLOW_PATH = "/v1/data/llm/authz/allow"


class RecordingTransport:
    """Passes every request to a real transport, keeping a copy; counts close() calls."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.sent: list[UpstreamRequest] = []
        self.closed = 0

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.sent.append(request)
        return await self.inner.send(request)

    async def close(self) -> None:
        self.closed += 1


class UnreachableTransport:
    """A transport with no network behind it: every send fails as a refused connection."""

    def __init__(self) -> None:
        self.attempts = 0

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.attempts += 1
        raise UpstreamUnreachable("cannot connect to the provider")

    async def close(self) -> None:
        pass


def document() -> dict[str, Any]:
    principal = Principal(user_id="alice", role="user", tier="premium", team="research")
    return action_input(principal, "chat", model="gpt-4", client_ip="10.0.0.7", environment="t")


@pytest.fixture
async def opa() -> AsyncIterator[OpaServer]:
    async with OpaServer() as server:
        yield server


@pytest.fixture
async def recording() -> AsyncIterator[RecordingTransport]:
    transport = RecordingTransport()
    yield transport
    await transport.inner.close()


async def test_decisions_are_asked_through_the_injected_transport(
    opa: OpaServer, recording: RecordingTransport
) -> None:
    policy = OpaPolicy(opa.url, ALLOW_PATH, timeout_s=2.0, retries=0, transport=recording)
    doc = document()
    assert (await policy.decide(doc)).allow is True
    assert len(recording.sent) == opa.count == 1
    sent = recording.sent[0]
    assert sent.url == opa.url + ALLOW_PATH
    assert orjson.loads(sent.body) == {"input": doc}
    assert (sent.kind, sent.pool) == ("policy", "opa")


async def test_closing_the_client_leaves_an_injected_transport_to_its_owner(
    opa: OpaServer, recording: RecordingTransport
) -> None:
    policy = OpaPolicy(opa.url, ALLOW_PATH, timeout_s=2.0, retries=0, transport=recording)
    await policy.decide(document())
    await policy.aclose()
    assert recording.closed == 0


async def test_without_a_transport_the_client_makes_and_closes_its_own(opa: OpaServer) -> None:
    policy = OpaPolicy(opa.url, ALLOW_PATH, timeout_s=2.0, retries=0)
    assert isinstance(policy.transport, AiohttpTransport)
    assert (await policy.decide(document())).allow is True
    closed = 0
    close = policy.transport.close

    async def counting_close() -> None:
        nonlocal closed
        closed += 1
        await close()

    policy.transport.close = counting_close  # type: ignore[method-assign]
    await policy.aclose()
    assert closed == 1


async def test_a_failing_injected_transport_is_retried_then_denies() -> None:
    """No network at all: the only way to reach OPA is the transport handed in."""
    transport = UnreachableTransport()
    policy = OpaPolicy("http://opa.invalid", ALLOW_PATH, timeout_s=1.0, retries=2,
                       transport=transport)  # fmt: skip
    decision = await policy.decide(document())
    assert decision.allow is False
    assert decision.error is not None
    assert "unreachable" in decision.error
    assert transport.attempts == 3


async def test_the_service_hands_its_transport_to_the_opa_client(
    opa: OpaServer, recording: RecordingTransport
) -> None:
    settings = load_settings({"OPA_URL": opa.url, "OPA_POLICY_PATH": ALLOW_PATH}, env_file=None)
    service = PolicyService.from_settings(settings.policy, transport=recording)
    try:
        assert (await service.decide(document())).allow is True
        assert len(recording.sent) == 1
    finally:
        await service.aclose()
    assert recording.closed == 0


async def test_a_deployment_named_opa_does_not_share_the_policy_engines_pool(
    opa: OpaServer,
) -> None:
    """One transport, a deployment called "opa" holding its only connection: OPA still answers."""
    transport = AiohttpTransport()
    arrived = asyncio.Event()

    def hold(_path: str, _input: Any) -> Reply:
        arrived.set()  # the deployment's request has its connection, and waits
        return Reply.result(True, delay_s=10.0)

    opa.answer(hold, Reply.result(True))
    provider_call = UpstreamRequest(
        url=opa.url + ALLOW_PATH, headers={"content-type": "application/json"},
        body=b'{"input": {}}', pool="opa", max_connections=1, read_timeout_s=10.0,
    )  # fmt: skip
    held = asyncio.create_task(transport.send(provider_call))
    try:
        await asyncio.wait_for(arrived.wait(), 5.0)
        policy = OpaPolicy(opa.url, ALLOW_PATH, timeout_s=1.0, retries=0, transport=transport)
        decision = await policy.decide(document())
        assert (decision.allow, decision.error) == (True, None)
        assert opa.count == 2
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
        await transport.close()
