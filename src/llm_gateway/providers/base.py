"""What a provider adapter is, and the helpers every adapter shares.

An adapter translates between the canonical chat model and one provider's
wire format, and nothing else: it builds the request, parses the answer and
parses the stream. Sending, timing and error classification are common to
all of them and live in :mod:`llm_gateway.providers.call`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Protocol

import orjson

from llm_gateway.chat import ChatRequest, ChatResponse, StreamEvent
from llm_gateway.config import Deployment
from llm_gateway.errors import (
    UpstreamError,
    UpstreamMalformedResponse,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamStreamInterrupted,
    UpstreamTimeout,
)
from llm_gateway.transport import UpstreamRequest


class ProviderAdapter(Protocol):
    def build_request(self, deployment: Deployment, chat: ChatRequest) -> UpstreamRequest: ...

    def probe_request(self, deployment: Deployment) -> UpstreamRequest:
        """The health check's call: the cheapest honest one, listing the provider's models
        (free, no tokens), with the credentials a chat call uses."""
        ...

    def parse_response(self, deployment: Deployment, body: bytes) -> ChatResponse: ...

    def parse_stream(
        self, deployment: Deployment, lines: AsyncIterator[bytes]
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield ``StreamStart`` first, then deltas, then exactly one ``StreamEnd``.

        A stream that ends without the provider's terminal event raises
        ``UpstreamStreamInterrupted``; an in-band provider error raises the
        matching ``UpstreamError``.
        """
        ...


def upstream_request(
    deployment: Deployment, path: str, headers: dict[str, str], payload: dict[str, Any] | None
) -> UpstreamRequest:
    """A POST of ``payload`` to the deployment; a GET when there is none (a health probe)."""
    if payload is None:
        return UpstreamRequest(
            url=deployment.base_url + path,
            headers={"accept": "application/json", **headers},
            body=b"",
            pool=deployment.name,
            max_connections=deployment.max_concurrent,
            read_timeout_s=deployment.timeout_s,
            method="GET",
        )
    return UpstreamRequest(
        url=deployment.base_url + path,
        headers={"content-type": "application/json", "accept": "application/json", **headers},
        body=orjson.dumps(payload),
        pool=deployment.name,
        max_connections=deployment.max_concurrent,
        read_timeout_s=deployment.timeout_s,
    )


def decode_json(body: bytes | str, what: str = "answer") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamMalformedResponse(f"the provider's {what} is not valid JSON") from None


def malformed(what: str) -> UpstreamMalformedResponse:
    return UpstreamMalformedResponse(f"the provider's answer has no valid {what}")


def ended_early(started: bool) -> UpstreamError:
    """A stream that stopped before its terminal event: empty, or cut off midway."""
    if not started:
        return UpstreamMalformedResponse("the provider's stream was empty")
    return UpstreamStreamInterrupted("the provider's stream ended early")


def error_for_status(status: int, headers: Mapping[str, str]) -> UpstreamError:
    """Classify a provider's error status. The body is deliberately not used:
    it may echo the prompt or name our key, and must not reach the caller."""
    said = f"the provider answered HTTP {status}"
    if status == 429:
        return UpstreamRateLimited(said, retry_after=retry_after(headers), upstream_status=status)
    if status in (408, 504):
        return UpstreamTimeout(said, upstream_status=status)
    if status in (503, 529):
        return UpstreamStatusError(
            said, code="upstream_overloaded", status=503, upstream_status=status,
            retry_after=retry_after(headers),
        )  # fmt: skip
    if status in (401, 403):
        return UpstreamStatusError(said, code="upstream_auth_failed", upstream_status=status)
    if status in (400, 413, 422):
        return UpstreamStatusError(
            f"the provider rejected the request (HTTP {status})",
            code="upstream_rejected_request", status=400, upstream_status=status, retryable=False,
        )  # fmt: skip
    return UpstreamStatusError(said, upstream_status=status)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``retry-after`` in seconds or as a date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
