"""Provider adapters, and one attempt at calling a deployment.

``call`` is a single attempt: retries and fallbacks are loops around it in the
routing stage, which re-translates from the canonical request for each try.
"""

from __future__ import annotations

import asyncio

from llm_gateway.chat import Answer, ChatRequest, EventStream, StreamStart
from llm_gateway.config import Deployment, Provider
from llm_gateway.errors import UpstreamError, UpstreamMalformedResponse, UpstreamTimeout
from llm_gateway.providers.anthropic import AnthropicAdapter
from llm_gateway.providers.base import ProviderAdapter, error_for_status
from llm_gateway.providers.ollama import OllamaAdapter
from llm_gateway.providers.openai import OpenAIAdapter
from llm_gateway.transport import AiohttpTransport, Transport, UpstreamResponse

__all__ = ["ADAPTERS", "AiohttpTransport", "Transport", "call", "probe"]

ADAPTERS: dict[Provider, ProviderAdapter] = {
    Provider.ANTHROPIC: AnthropicAdapter(),
    Provider.OPENAI: OpenAIAdapter(),
    Provider.OPENAI_COMPATIBLE: OpenAIAdapter(),
    Provider.OLLAMA: OllamaAdapter(),
}


async def call(transport: Transport, deployment: Deployment, chat: ChatRequest) -> Answer:
    """One attempt: a ChatResponse, or an EventStream whose first event has arrived."""
    adapter = ADAPTERS[deployment.provider]
    request = adapter.build_request(deployment, chat)
    try:
        async with asyncio.timeout(deployment.timeout_s):
            response = await transport.send(request)
            if response.status >= 400:
                await _drain(response)
                raise error_for_status(response.status, response.headers)
            if not chat.stream:
                return adapter.parse_response(deployment, await response.read())
            events = adapter.parse_stream(deployment, response.lines())
            try:
                first = await anext(events)
            except BaseException as exc:
                await events.aclose()
                response.close()
                if isinstance(exc, StopAsyncIteration):
                    raise UpstreamMalformedResponse("the provider's stream was empty") from None
                raise
    except TimeoutError:
        raise UpstreamTimeout(
            f"the provider did not answer within {deployment.timeout_s:g} s"
        ) from None
    if not isinstance(first, StreamStart):
        await events.aclose()
        response.close()
        raise UpstreamMalformedResponse("the provider's stream did not start properly")
    return EventStream(first, events, on_close=response.close)


async def probe(transport: Transport, deployment: Deployment) -> None:
    """The health check's call (see ``probe_request``); raises what a chat call would."""
    request = ADAPTERS[deployment.provider].probe_request(deployment)
    try:
        async with asyncio.timeout(deployment.timeout_s):
            response = await transport.send(request)
            await _drain(response)
    except TimeoutError:
        raise UpstreamTimeout(
            f"the provider did not answer within {deployment.timeout_s:g} s"
        ) from None
    if response.status >= 400:
        raise error_for_status(response.status, response.headers)


async def _drain(response: UpstreamResponse) -> None:
    """Read (and discard) a small error body so the connection can be reused."""
    try:
        await response.read()
    except UpstreamError:
        response.close()
