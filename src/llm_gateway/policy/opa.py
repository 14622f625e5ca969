"""Decisions from an OPA server, through its Data API.

``POST {OPA_URL}{OPA_POLICY_PATH}`` with ``{"input": ...}`` answers
``{"result": ...}``; a missing ``result`` means the rule is undefined for that
input, which denies. Each attempt has a short timeout; connection failures,
timeouts and 5xx answers are retried a bounded number of times; anything else
(a 4xx, a body that is not JSON) is not. When no decision can be had, the
request is denied (fail closed).

The optional cache keys decisions by a hash of the input without
``context.time``; so with the cache on, a policy that depends on the time of
day sees it at the granularity of the cache's TTL.

Queries go through the gateway's one HTTP seam, :class:`llm_gateway.transport.Transport`,
the same protocol (and, in a running gateway, the same object) the provider
adapters send through, rather than an HTTP client of the OPA client's own: the
app owns and closes one transport, a test can hand in a recording one, and the
OPA client needs no second HTTP library (httpx would cost over ten times
aiohttp's CPU per request, on every policy decision). OPA's connections stay
in a pool of their own (``kind="policy"``), so no deployment can take them.
Without an injected transport the client makes and closes its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

import orjson

from llm_gateway.errors import UpstreamError, UpstreamTimeout
from llm_gateway.policy.decision import Decision, PolicyError, decision_from_result, rule_of
from llm_gateway.transport import AiohttpTransport, Transport, UpstreamRequest

log = logging.getLogger(__name__)
CACHE_ENTRIES = 10_000


class OpaUnavailable(PolicyError):
    """No answer from the OPA server (timeouts, refused connections, 5xx)."""


class OpaPolicy:
    def __init__(
        self,
        url: str,
        policy_path: str,
        *,
        timeout_s: float,
        retries: int,
        cache_seconds: float = 0.0,
        transport: Transport | None = None,
    ) -> None:
        """``transport``: the app's, which the app closes; by default one of its own."""
        self.endpoint = f"{url.rstrip('/')}{policy_path}"
        self.query_endpoint = f"{url.rstrip('/')}/v1/query"
        self._batch_query = (
            "decisions := {i: d | some i; doc := input.batch[i]; "
            f"d := {rule_of(policy_path)} with input as doc}}"
        )
        self.revision = f"opa:{policy_path}"
        self.timeout_s = timeout_s
        self.retries = retries
        self.cache_seconds = cache_seconds
        self.transport: Transport = transport if transport is not None else AiohttpTransport()
        self._owns_transport = transport is None
        self._cache: OrderedDict[bytes, tuple[float, Decision]] = OrderedDict()

    async def decide(self, document: dict[str, Any]) -> Decision:
        started = time.perf_counter()
        key = _cache_key(document) if self.cache_seconds else None
        decision = self._cached(key) if key is not None else None
        if decision is None:
            try:
                result = await self._query({"input": document}, self.endpoint)
                decision = decision_from_result(result, revision=self.revision)
            except PolicyError as exc:
                log.warning("OPA gave no usable decision; denying: %s", exc)
                decision = Decision.failed(str(exc), self.revision)
            else:
                if key is not None:
                    self._store(key, decision)
        return dataclasses.replace(decision, eval_us=(time.perf_counter() - started) * 1e6)

    async def decide_many(self, documents: list[dict[str, Any]]) -> list[Decision]:
        """A decision per document from one request to OPA's Query API (``POST /v1/query``).

        The query evaluates the decision rule once per document, ``with input as``
        each; a document the rule is undefined for is missing from the answer,
        which denies, as for a single decision. Cached decisions are not asked
        again, and one document is one ordinary decision.
        """
        if len(documents) < 2:
            return [await self.decide(document) for document in documents]
        started = time.perf_counter()
        keys = [_cache_key(d) if self.cache_seconds else None for d in documents]
        decisions = [self._cached(k) if k is not None else None for k in keys]
        asked = [i for i, decision in enumerate(decisions) if decision is None]
        if asked:
            answered = await self._batch([documents[i] for i in asked])
            for i, decision in zip(asked, answered, strict=True):
                decisions[i] = decision
                key = keys[i]
                if key is not None and decision.error is None:
                    self._store(key, decision)
        each_us = (time.perf_counter() - started) * 1e6 / len(documents)
        return [dataclasses.replace(d, eval_us=each_us) for d in decisions if d is not None]

    async def _batch(self, documents: list[dict[str, Any]]) -> list[Decision]:
        try:
            body = {"query": self._batch_query, "input": {"batch": documents}}
            results = _batch_results(await self._query(body, self.query_endpoint), len(documents))
        except PolicyError as exc:
            log.warning("OPA gave no usable decisions; denying: %s", exc)
            return [Decision.failed(str(exc), self.revision)] * len(documents)
        return [decision_from_result(r, revision=self.revision) for r in results]

    async def _query(self, request: dict[str, Any], url: str) -> Any:
        """POST ``request`` to ``url``, retried as the class says; OPA's ``result``."""
        body = orjson.dumps(request)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.05 * 2**attempt, 0.5))
            try:
                async with asyncio.timeout(self.timeout_s):
                    response = await self.transport.send(
                        UpstreamRequest(
                            url=url,
                            headers={"content-type": "application/json"},
                            body=body,
                            pool="opa",
                            max_connections=64,
                            read_timeout_s=self.timeout_s,
                            kind="policy",
                        )
                    )
                    try:
                        payload = await response.read()
                    finally:
                        response.close()
            except (TimeoutError, UpstreamTimeout):
                problem = "OPA did not answer in time"
                continue
            except UpstreamError as exc:
                problem = f"OPA is unreachable: {exc.message}"
                continue
            if response.status >= 500:
                problem = f"OPA answered {response.status}"
                continue
            if response.status != 200:
                raise PolicyError(f"OPA answered {response.status}: {_opa_error(payload)}")
            try:
                answer = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise PolicyError("OPA's answer is not JSON") from None
            if not isinstance(answer, dict):
                raise PolicyError("OPA's answer is not a JSON object")
            return answer.get("result")  # absent: undefined, which denies
        raise OpaUnavailable(f"{problem} (after {self.retries + 1} attempts)")

    def _cached(self, key: bytes) -> Decision | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, decision = entry
        if expires < time.monotonic():
            del self._cache[key]
            return None
        return decision

    def _store(self, key: bytes, decision: Decision) -> None:
        self._cache[key] = (time.monotonic() + self.cache_seconds, decision)
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def aclose(self) -> None:
        """Close the transport if it is this client's own; an injected one is its owner's."""
        if self._owns_transport:
            await self.transport.close()


def _cache_key(document: dict[str, Any]) -> bytes:
    context = document.get("context")
    if isinstance(context, dict) and "time" in context:
        document = {**document, "context": {k: v for k, v in context.items() if k != "time"}}
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()


def _batch_results(answer: Any, count: int) -> list[Any]:
    """The decision of each document of a batch, ``None`` (undefined) where OPA gave none."""
    if not isinstance(answer, list):
        raise PolicyError("OPA's query answer has no result list")
    if not answer:
        return [None] * count
    first = answer[0]
    decisions = first.get("decisions") if isinstance(first, dict) else None
    if not isinstance(decisions, dict):
        raise PolicyError("OPA's query answer has no decisions object")
    return [decisions.get(str(i)) for i in range(count)]


def _opa_error(payload: bytes) -> str:
    """OPA's error code and message (about the policy, never the input), shortened."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "no details"
    if isinstance(body, dict):
        return f"{body.get('code', 'error')}: {str(body.get('message', ''))[:200]}"
    return "no details"
