"""Opaque bearer tokens, asked about at an OAuth2 introspection endpoint (RFC 7662).

A bearer credential that is neither an API key nor shaped like a JWT is
POSTed (``token=...&token_type_hint=access_token``) to the configured endpoint
with the gateway's client credentials (HTTP Basic, RFC 6749 section 2.3.1).
An ``active`` answer becomes a principal through the endpoint's claim mapping
(``auth_method: introspection``) and is cached, by the token's SHA-256, for the
token's remaining life (its ``exp``) and at most ``INTROSPECTION_CACHE_SECONDS``.

It fails closed: an endpoint that does not answer within ``OIDC_TIMEOUT_SECONDS``,
answers other than 200, or not with a JSON object is a 503
``introspection_unavailable``; ``active: false`` is a 401 ``token_inactive``;
an expired ``exp``, a future ``nbf`` or, when an audience is configured, an
``aud`` that does not name it are the JWT codes (``token_expired``,
``token_not_yet_valid``, ``invalid_claims``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from llm_gateway.auth.claims import principal_of
from llm_gateway.auth.principal import Principal
from llm_gateway.config.identity import IntrospectionEntry
from llm_gateway.errors import AuthenticationFailed, IdentityUnavailable, UpstreamError
from llm_gateway.transport import Transport, UpstreamRequest

log = logging.getLogger(__name__)

_CACHE_LIMIT = 10_000
MAX_ANSWER_BYTES = 256 * 1024


def _unavailable(why: str) -> IdentityUnavailable:
    log.warning("introspection failed: %s", why)
    return IdentityUnavailable(
        "the identity provider cannot check the token right now",
        code="introspection_unavailable",
    )


class Introspector:
    def __init__(
        self,
        entry: IntrospectionEntry,
        transport: Transport,
        *,
        timeout_s: float = 5.0,
        cache_seconds: float = 300.0,
        leeway_s: float = 30.0,
    ) -> None:
        self.entry = entry
        self.transport = transport
        self.timeout_s = timeout_s
        self.cache_seconds = cache_seconds
        self.leeway_s = leeway_s
        self.calls = 0  # requests made to the endpoint, for tests and logs
        credentials = f"{quote(entry.client_id, safe='')}:{quote(entry.client_secret, safe='')}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self._cache: dict[bytes, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        key = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(key)
        if cached is not None:
            if time.time() < cached[1]:
                return cached[0]
            del self._cache[key]
        answer = await self._ask(token)
        principal, until = self._judge(answer)
        if until > time.time():
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (principal, until)
        return principal

    async def _ask(self, token: str) -> dict[str, Any]:
        body = urlencode({"token": token, "token_type_hint": "access_token"}).encode()
        request = UpstreamRequest(
            url=self.entry.url, body=body, pool="introspection", max_connections=16,
            read_timeout_s=self.timeout_s, kind="identity", method="POST",
            follow_redirects=False,
            headers={"content-type": "application/x-www-form-urlencoded",
                     "accept": "application/json", "authorization": self._authorization},
        )  # fmt: skip
        self.calls += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.transport.send(request)
                raw = await response.read()
        except TimeoutError:
            raise _unavailable("the endpoint did not answer in time") from None
        except UpstreamError as exc:
            raise _unavailable(exc.message) from None
        if response.status != 200:
            raise _unavailable(f"the endpoint answered HTTP {response.status}")
        if len(raw) > MAX_ANSWER_BYTES:
            raise _unavailable("the endpoint's answer is too large")
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _unavailable("the endpoint's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise _unavailable("the endpoint's answer is not a JSON object")
        return answer

    def _judge(self, answer: dict[str, Any]) -> tuple[Principal, float]:
        """The principal of an active answer, and until when it may be cached."""
        if answer.get("active") is not True:
            raise AuthenticationFailed("the bearer token is not active", code="token_inactive")
        now = time.time()
        exp, nbf = answer.get("exp"), answer.get("nbf")
        if exp is not None and (not _number(exp) or exp <= now - self.leeway_s):
            raise AuthenticationFailed("the bearer token has expired", code="token_expired")
        if nbf is not None and (not _number(nbf) or nbf > now + self.leeway_s):
            raise AuthenticationFailed(
                "the bearer token is not valid yet", code="token_not_yet_valid"
            )
        audience = self.entry.audience
        if audience is not None:
            aud = answer.get("aud")
            named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if audience not in named:
                raise AuthenticationFailed(
                    "the bearer token's claims are not acceptable: wrong audience",
                    code="invalid_claims",
                )
        principal = principal_of(answer, self.entry.claims, "introspection")
        until = now + self.cache_seconds
        if exp is not None:
            until = min(until, float(exp))
        return principal, until


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
