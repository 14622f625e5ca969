"""The health check's probe: each provider's free model listing, with the chat call's key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from llm_gateway.config import Provider
from llm_gateway.emulators import EmulatorServer
from llm_gateway.errors import UpstreamStatusError, UpstreamUnreachable
from llm_gateway.providers import AiohttpTransport, probe
from tests.pipeline.deployments import deployment

KEY = "sk-probe-key"


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    server = EmulatorServer(api_key=KEY)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport()
    try:
        yield transport
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("provider", "path", "suffix"),
    [
        (Provider.ANTHROPIC, "/v1/models", "/v1"),
        (Provider.OPENAI, "/v1/models", "/v1"),
        (Provider.OPENAI_COMPATIBLE, "/v1/models", "/v1"),
        (Provider.OLLAMA, "/api/tags", ""),
    ],
)
async def test_each_provider_is_probed_with_a_free_listing(
    emulator: EmulatorServer,
    transport: AiohttpTransport,
    provider: Provider,
    path: str,
    suffix: str,
) -> None:
    target = deployment("m", provider=provider, base_url=emulator.base_url + suffix, api_key=KEY)
    await probe(transport, target)
    async with httpx.AsyncClient() as client:
        seen = (await client.get(emulator.base_url + "/_emulator/requests")).json()
    assert [r["path"] for r in seen] == [path]  # the emulator serves these paths to GET only


async def test_a_wrong_key_fails_the_probe_as_it_would_fail_a_call(
    emulator: EmulatorServer, transport: AiohttpTransport
) -> None:
    target = deployment("m", base_url=emulator.base_url + "/v1", api_key="sk-wrong")
    with pytest.raises(UpstreamStatusError) as raised:
        await probe(transport, target)
    assert raised.value.code == "upstream_auth_failed"


async def test_a_provider_that_is_not_there_fails_the_probe(transport: AiohttpTransport) -> None:
    with pytest.raises(UpstreamUnreachable):
        await probe(transport, deployment("m", base_url="http://127.0.0.1:9/v1"))
