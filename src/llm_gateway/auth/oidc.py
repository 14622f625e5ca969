"""Tokens of trusted OpenID Connect issuers, verified against their published keys.

Each trusted issuer (``OIDC_ISSUER``, and the list in ``config/identity.yaml``)
has its audience, its algorithm allow-list (asymmetric only: never HMAC, never
``none``) and its claim mapping. A token is verified by the issuer its ``iss``
names; a token naming another is refused (``untrusted_issuer``).

Keys: the issuer's JWKS, found through ``<issuer>/.well-known/openid-configuration``
(whose ``issuer`` must be the configured one, exactly) or at its ``jwks_url``,
fetched through the gateway's pooled transport, each call bounded by
``OIDC_TIMEOUT_SECONDS``. They are fresh for the response's
``Cache-Control: max-age`` (between ``JWKS_MIN_REFRESH_SECONDS`` and 24 h), or
``JWKS_CACHE_SECONDS`` without one; stale keys keep verifying while a refetch
runs in the background, and the last good keys stay in use while the IdP is
unreachable. A ``kid`` the keys do not name asks for a refetch; every fetch
of an issuer's keys (the first, a background refresh, an unknown kid's) is
at most one per ``JWKS_MIN_REFRESH_SECONDS`` (concurrent requests share the
one in flight), so a flood of made-up kids costs the IdP at most one fetch
per interval; a kid still unknown is refused (``unknown_key_id``). Until the
first fetch succeeds, a failed one is retried after at most 5 s.

Codes: ``untrusted_issuer``, ``algorithm_not_allowed``, ``unknown_key_id``,
``key_type_mismatch`` (the kid names a key that cannot verify the token's
algorithm), ``discovery_invalid`` (not JSON, or no https ``jwks_uri``),
``discovery_issuer_mismatch``, ``jwks_invalid``, and the JWT codes; no keys at
all because the IdP does not answer: 503 ``identity_provider_unavailable``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson

from llm_gateway.auth.claims import principal_of
from llm_gateway.auth.jwt import (
    Jwk,
    cached_principal,
    decode_claims,
    header_of,
    load_jwks,
    remember,
)
from llm_gateway.auth.principal import Principal
from llm_gateway.config.identity import IssuerEntry
from llm_gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    IdentityUnavailable,
    UpstreamError,
)
from llm_gateway.settings.auth import idp_url
from llm_gateway.transport import Transport, UpstreamRequest

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_AGE_CEILING_S = 86_400.0
NO_KEYS_RETRY_S = 5.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(no-store|no-cache)(?:$|[,\s])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Timing:
    """How keys are fetched and kept (the settings' values)."""

    timeout_s: float = 5.0
    min_refresh_s: float = 30.0
    default_max_age_s: float = 300.0
    leeway_s: float = 30.0


class _DocumentError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def fetch_json(
    transport: Transport, url: str, pool: str, timeout_s: float
) -> tuple[Any, Mapping[str, str]]:
    """GET ``url`` as JSON; raise UpstreamError (unreachable, timeout) or _DocumentError."""
    request = UpstreamRequest(
        url=url, headers={"accept": "application/json"}, body=b"", pool=pool,
        max_connections=4, read_timeout_s=timeout_s, kind="identity", method="GET",
        follow_redirects=False,
    )  # fmt: skip
    response = await transport.send(request)
    body = await response.read()
    if response.status != 200:
        raise _DocumentError("unavailable", f"{url} answered HTTP {response.status}")
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _DocumentError("invalid", f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return orjson.loads(body), response.headers
    except orjson.JSONDecodeError:
        raise _DocumentError("invalid", f"{url} did not send JSON") from None


def max_age(headers: Mapping[str, str], timing: Timing) -> float:
    """How long a JWKS response stays fresh, by its Cache-Control, bounded."""
    control = headers.get("cache-control", "")
    if _NO_CACHE.search(control):
        return timing.min_refresh_s
    found = _MAX_AGE.search(control)
    if found is None:
        return timing.default_max_age_s
    return min(max(float(found.group(1)), timing.min_refresh_s), MAX_AGE_CEILING_S)


@dataclass(slots=True)
class KeySet:
    """One issuer's keys: fetched, cached, refreshed (rate-limited), kept when the IdP fails."""

    entry: IssuerEntry
    transport: Transport
    timing: Timing
    keys: list[Jwk] | None = None
    jwks_url: str | None = None
    fresh_until: float = 0.0  # monotonic
    last_attempt: float = float("-inf")  # monotonic
    fetches: int = 0  # JWKS fetches made (discovery not counted), for tests and logs
    error: GatewayError | None = None  # why the last attempt failed
    _inflight: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.jwks_url = self.entry.jwks_url

    async def keys_for(self, kid: str | None, algorithm: str) -> list[Any]:
        """The keys that may have signed a token with this kid and algorithm."""
        if self.keys is None:
            await self.refresh()
            if self.keys is None:
                raise self.error or IdentityUnavailable(
                    "the identity provider's keys are not available yet"
                )
        elif time.monotonic() >= self.fresh_until:
            self._refresh_soon()
        named = self._named(kid)
        if kid is not None and not named:
            await self.refresh()
            named = self._named(kid)
            if not named:
                raise AuthenticationFailed(
                    "the bearer token's key id is unknown", code="unknown_key_id"
                )
        fitting = [k.key for k in named if k.fits(algorithm)]
        if not fitting:
            raise AuthenticationFailed(
                "no key of the issuer can verify the bearer token's algorithm",
                code="key_type_mismatch",
            )
        return fitting

    def _named(self, kid: str | None) -> list[Jwk]:
        keys = self.keys or []
        return keys if kid is None else [k for k in keys if k.kid == kid]

    async def refresh(self) -> None:
        """Fetch the keys, unless a fetch runs (then wait for it) or ran too recently."""
        task = self._start()
        if task is not None:
            await asyncio.shield(task)

    def _refresh_soon(self) -> None:
        self._start()

    def _start(self) -> asyncio.Task[None] | None:
        if self._inflight is not None:
            return self._inflight
        now = time.monotonic()
        # With no keys at all, a failed first fetch is retried sooner (nothing else can
        # verify), still at most once per NO_KEYS_RETRY_S.
        interval = self.timing.min_refresh_s
        if self.keys is None:
            interval = min(interval, NO_KEYS_RETRY_S)
        if now - self.last_attempt < interval:
            return None
        self.last_attempt = now
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        issuer = self.entry.issuer
        try:
            async with asyncio.timeout(self.timing.timeout_s):
                if self.jwks_url is None:
                    self.jwks_url = await self._discover()
                self.fetches += 1
                document, headers = await fetch_json(
                    self.transport, self.jwks_url, issuer, self.timing.timeout_s
                )
            try:
                keys = load_jwks(document)
            except ValueError:
                raise _DocumentError("jwks_invalid", "the JWKS is not a {'keys': [...]}") from None
        except TimeoutError:
            self._failed(IdentityUnavailable("the identity provider did not answer in time"))
        except UpstreamError:
            self._failed(IdentityUnavailable("the identity provider cannot be reached"))
        except _DocumentError as exc:
            if exc.code == "unavailable":
                self._failed(IdentityUnavailable("the identity provider refused to answer"))
            else:
                code = "jwks_invalid" if exc.code == "invalid" else exc.code
                self._failed(AuthenticationFailed(
                    "the token's identity provider is misconfigured", code=code
                ))  # fmt: skip
            log.warning("oidc %s: %s", issuer, exc.message)
        except Exception:  # a bug or an odd answer must not leave the keys half-fetched
            log.exception("oidc %s: fetching keys failed", issuer)
            self._failed(IdentityUnavailable("the identity provider's keys cannot be read"))
        else:
            self.keys = keys
            self.error = None
            self.fresh_until = time.monotonic() + max_age(headers, self.timing)
            log.info("oidc %s: %d keys fetched from %s", issuer, len(keys), self.jwks_url)

    def _failed(self, error: GatewayError) -> None:
        self.error = error
        kept = "keeping the last good keys" if self.keys is not None else "no keys yet"
        log.warning("oidc %s: fetching keys failed (%s): %s", self.entry.issuer, kept, error)

    async def _discover(self) -> str:
        url = f"{self.entry.issuer}/.well-known/openid-configuration"
        try:
            document, _ = await fetch_json(
                self.transport, url, self.entry.issuer, self.timing.timeout_s
            )
        except _DocumentError as exc:
            code = "discovery_invalid" if exc.code == "invalid" else exc.code
            raise _DocumentError(code, exc.message) from None
        if not isinstance(document, dict):
            raise _DocumentError("discovery_invalid", f"{url} is not a JSON object")
        if document.get("issuer") != self.entry.issuer:
            raise _DocumentError(
                "discovery_issuer_mismatch", f"{url} names another issuer (OIDC Discovery 4.3)"
            )
        jwks_uri = document.get("jwks_uri")
        try:
            return idp_url(jwks_uri) if isinstance(jwks_uri, str) else idp_url("")
        except ValueError:
            raise _DocumentError(
                "discovery_invalid", f"{url}: jwks_uri must be an https URL"
            ) from None

    async def aclose(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a JWT claims, read before anything is verified (to pick its verifier)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


class OidcVerifier:
    """Verifies the tokens of the trusted issuers; verified tokens are cached until ``exp``."""

    def __init__(
        self, issuers: list[IssuerEntry], transport: Transport, timing: Timing | None = None
    ) -> None:
        self.timing = timing or Timing()
        self.keysets = {e.issuer: KeySet(e, transport, self.timing) for e in issuers}
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._options: jwt.types.Options = {"require": ["exp", "iat", "iss", "aud"]}

    def trusts(self, issuer: str) -> bool:
        return issuer in self.keysets

    def cached(self, token: str) -> Principal | None:
        return cached_principal(self._verified, token)

    async def verify(self, token: str, issuer: str | None = None) -> Principal:
        cached = cached_principal(self._verified, token)
        if cached is not None:
            return cached
        header = header_of(token)
        iss = issuer if issuer is not None else unverified_issuer(token)
        keyset = self.keysets.get(iss) if iss is not None else None
        if keyset is None:
            raise AuthenticationFailed(
                "the bearer token's issuer is not trusted", code="untrusted_issuer"
            )
        algorithm = header["alg"]
        entry = keyset.entry
        if algorithm not in entry.algorithms:
            raise AuthenticationFailed(
                "the bearer token's signing algorithm is not allowed", code="algorithm_not_allowed"
            )
        keys = await keyset.keys_for(header.get("kid"), algorithm)
        for i, key in enumerate(keys):
            try:
                claims = decode_claims(
                    token, key, algorithm, audience=entry.audience, issuer=entry.issuer,
                    leeway=self.timing.leeway_s, options=self._options,
                )  # fmt: skip
            except AuthenticationFailed as exc:
                if exc.code != "invalid_signature" or i == len(keys) - 1:
                    raise
                continue
            principal = principal_of(claims, entry.claims, "oidc")
            remember(self._verified, token, principal, claims)
            return principal
        raise AuthenticationFailed(  # pragma: no cover (keys_for returns at least one)
            "the bearer token's signature is invalid", code="invalid_signature"
        )

    async def aclose(self) -> None:
        await asyncio.gather(*(k.aclose() for k in self.keysets.values()))
