"""The clients: :class:`Gateway` (blocking) and :class:`AsyncGateway` (asyncio), one API.

Both talk to the gateway's own API (``/api/v1/*`` and ``/v1/models``) over
httpx, retry what may be retried (see :class:`llm_gateway_sdk._core.Call`),
and turn every failure into a :class:`~llm_gateway_sdk.errors.GatewayError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, overload

import httpx

from llm_gateway_sdk import _core
from llm_gateway_sdk._core import Call, Messages, Moment, Settings
from llm_gateway_sdk.types import (
    AuditPage,
    AuditRecord,
    ChatChunk,
    ChatResponse,
    ChatSummary,
    Confirmation,
    GroundingVerdict,
    Limits,
    ModelInfo,
    ScanResult,
    UsageReport,
)

__all__ = ["AsyncChatStream", "AsyncGateway", "ChatStream", "Gateway"]

StreamItem = ChatChunk | ChatSummary


class _Base:
    """The settings and the calls' descriptions, shared by both clients."""

    _settings: Settings

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT_S,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        max_retry_wait: float = _core.DEFAULT_MAX_RETRY_WAIT_S,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = Settings.resolve(
            api_url, api_key, timeout, max_retries, max_retry_wait, headers
        )

    @property
    def api_url(self) -> str:
        """The gateway's base URL (``LLM_GATEWAY_URL`` when not given)."""
        return self._settings.api_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"


class ChatStream:
    """A streamed answer: iterate for :class:`ChatChunk` items, then one :class:`ChatSummary`.

    Use it in a ``with`` block, or iterate it to the end; either closes the
    connection. ``summary`` is the last item once the stream ended. An ``error``
    event raises its typed error; a stream cut before its ``done`` event raises
    :class:`~llm_gateway_sdk.errors.ProtocolError`.
    """

    def __init__(self, response: httpx.Response, settings: Settings) -> None:
        self._response = response
        self._settings = settings
        self._state = _core.StreamState(response)
        self._state.check_start()

    @property
    def request_id(self) -> str | None:
        """The gateway's id of this request (its audit row)."""
        return _core.request_id_of(self._response)

    @property
    def confirmation_id(self) -> str | None:
        """Set when the streamed answer is a confirmation challenge."""
        return _core.header(self._response, "x-confirmation-id")

    @property
    def summary(self) -> ChatSummary | None:
        """The ``done`` event's metadata, once the stream got there."""
        return self._state.summary

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._state.parts)

    def __iter__(self) -> Iterator[StreamItem]:
        if self._state.finished:
            return  # read to its end already
        try:
            for line in self._response.iter_lines():
                yield from self._state.lines(line)
                if self._state.finished:
                    return
            yield from self._state.ended()
        except _core.HTTPX_ERRORS as exc:
            raise self._state.cut(exc) from None
        finally:
            self.close()

    def until_done(self) -> ChatSummary:
        """Read the stream to its end and return the summary (``content``: the whole text)."""
        for _ in self:
            pass
        assert self._state.summary is not None  # else iterating raised
        return self._state.summary

    def close(self) -> None:
        """Close the connection (what is left of the stream is not read)."""
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncChatStream:
    """The async twin of :class:`ChatStream`: ``async for item in stream``."""

    def __init__(self, response: httpx.Response, settings: Settings) -> None:
        self._response = response
        self._settings = settings
        self._state = _core.StreamState(response)
        self._state.check_start()

    @property
    def request_id(self) -> str | None:
        """The gateway's id of this request (its audit row)."""
        return _core.request_id_of(self._response)

    @property
    def confirmation_id(self) -> str | None:
        """Set when the streamed answer is a confirmation challenge."""
        return _core.header(self._response, "x-confirmation-id")

    @property
    def summary(self) -> ChatSummary | None:
        """The ``done`` event's metadata, once the stream got there."""
        return self._state.summary

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._state.parts)

    async def __aiter__(self) -> AsyncIterator[StreamItem]:
        if self._state.finished:
            return  # read to its end already
        try:
            async for line in self._response.aiter_lines():
                for item in self._state.lines(line):
                    yield item
                if self._state.finished:
                    return
            for item in self._state.ended():
                yield item
        except _core.HTTPX_ERRORS as exc:
            raise self._state.cut(exc) from None
        finally:
            await self.aclose()

    async def until_done(self) -> ChatSummary:
        """Read the stream to its end and return the summary (``content``: the whole text)."""
        async for _ in self:
            pass
        assert self._state.summary is not None  # else iterating raised
        return self._state.summary

    async def aclose(self) -> None:
        """Close the connection (what is left of the stream is not read)."""
        await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Gateway(_Base):
    """A blocking client of the LLM Security Gateway.

    ``api_url`` defaults to ``LLM_GATEWAY_URL`` (else ``http://localhost:8080``),
    ``api_key`` (a JWT or an API key) to ``LLM_GATEWAY_API_KEY``. ``timeout``
    is in seconds (or an ``httpx.Timeout``); ``max_retries`` bounds the retries
    of 429 and 503 answers and of failed connections, waiting as long as the
    gateway's ``Retry-After`` says when it is at most ``max_retry_wait``
    seconds (a longer one is raised at once), and with exponential backoff and
    jitter otherwise. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT_S,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        max_retry_wait: float = _core.DEFAULT_MAX_RETRY_WAIT_S,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_url, api_key, timeout=timeout, max_retries=max_retries,
                         max_retry_wait=max_retry_wait, headers=headers)  # fmt: skip
        self._owns_client = http_client is None
        self._http = http_client or httpx.Client(timeout=self._settings.timeout)

    # --- chat -------------------------------------------------------------------

    @overload
    def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        conversation_id: str | None = None,
        environment: str | None = None,
        mfa_code: str | None = None,
        raise_on_confirmation: bool = False,
        **options: Any,
    ) -> ChatResponse: ...

    @overload
    def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: Literal[True],
        max_tokens: int | None = None,
        temperature: float | None = None,
        conversation_id: str | None = None,
        environment: str | None = None,
        mfa_code: str | None = None,
        raise_on_confirmation: bool = False,
        **options: Any,
    ) -> ChatStream: ...

    def chat(  # noqa: PLR0913 (the native API's fields and headers)
        self,
        model: str,
        messages: Messages,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        conversation_id: str | None = None,
        environment: str | None = None,
        mfa_code: str | None = None,
        raise_on_confirmation: bool = False,
        **options: Any,
    ) -> ChatResponse | ChatStream:
        """Send a conversation to ``model`` through the gateway's native ``POST /api/v1/chat``.

        ``messages`` are ``{"role": "system"|"user"|"assistant", "content": str}``
        dicts. ``conversation_id`` is sent as ``X-Conversation-Id`` (reversible
        DLP tokens and confirmations are kept per conversation), ``environment``
        as ``X-Environment``, ``mfa_code`` as ``X-Gateway-MFA``; other keyword
        ``options`` are added to the request body as they are. With
        ``stream=True`` the answer is a :class:`ChatStream`. A request the gateway
        holds for a person's confirmation comes back with ``confirmation`` set
        (or raises :class:`~llm_gateway_sdk.errors.ConfirmationRequired` with
        ``raise_on_confirmation=True``).

        Retried on 429 and 503: the gateway refuses those before a model is
        called (or the model refused), so a retry cannot answer twice.
        """
        call = _core.chat_call(
            model, messages, stream=stream, max_tokens=max_tokens, temperature=temperature,
            conversation_id=conversation_id, environment=environment, mfa_code=mfa_code,
            options=options,
        )  # fmt: skip
        response = self._send(call)
        if stream:
            return ChatStream(response, self._settings)
        return _core.chat_response(response, raise_on_confirmation)

    # --- management -------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """The models, fallback chains and ``auto`` this caller may ask for (``GET /v1/models``)."""
        response = self._send(Call("GET", "/v1/models"))
        body = _core.json_of(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise _core.unexpected(response, "no list of models")
        return [_core.parse(ModelInfo, item, response) for item in data]

    def scan(self, text: str, redact: bool = False) -> ScanResult:
        """What DLP finds in ``text``, without calling a model (``POST /api/v1/dlp/scan``)."""
        call = Call("POST", "/api/v1/dlp/scan", {"text": text, "redact": redact})
        return self._parse(ScanResult, call)

    def usage(
        self,
        group_by: str = "user",
        *,
        start: Moment | None = None,
        end: Moment | None = None,
        user: str | None = None,
    ) -> UsageReport:
        """Requests, tokens and cost per ``group_by`` (user, team, tenant, model or key)
        over ``[start, end)`` (default: this month), as far as the policy allows."""
        params = _core.usage_params(group_by, start, end, user)
        return self._parse(UsageReport, Call("GET", "/api/v1/usage", params=params))

    def limits(self) -> Limits:
        """The caller's rate windows and budgets as they stand (``GET /api/v1/limits``)."""
        return self._parse(Limits, Call("GET", "/api/v1/limits"))

    def confirmations(self) -> list[Confirmation]:
        """The open confirmations this caller may act on."""
        response = self._send(Call("GET", "/api/v1/confirmations"))
        body = _core.json_of(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise _core.unexpected(response, "no list of confirmations")
        return [_core.parse(Confirmation, item, response) for item in data]

    def confirmation(self, confirmation_id: str) -> Confirmation:
        """One open confirmation (:class:`~llm_gateway_sdk.errors.ConfirmationNotFound` if none)."""
        path = f"/api/v1/confirmations/{_core.path_id(confirmation_id)}"
        return self._parse(Confirmation, Call("GET", path))

    def confirm(
        self, confirmation_id: str, phrase: str, mfa_code: str | None = None
    ) -> Confirmation:
        """Approve a confirmation with its phrase (and a TOTP code when it needs MFA).

        Nothing is released by this alone: the requester's next message in the
        conversation gets what was held.
        """
        body: dict[str, Any] = {"phrase": phrase}
        if mfa_code is not None:
            body["mfa_code"] = mfa_code
        path = f"/api/v1/confirmations/{_core.path_id(confirmation_id)}/confirm"
        return self._parse(Confirmation, Call("POST", path, body, idempotent=False))

    def cancel(self, confirmation_id: str) -> Confirmation:
        """Discard a confirmation: what it held is never released."""
        path = f"/api/v1/confirmations/{_core.path_id(confirmation_id)}/cancel"
        return self._parse(Confirmation, Call("POST", path, {}, idempotent=False))

    def audit(  # noqa: PLR0913 (one argument per filter of the audit API)
        self,
        *,
        start: Moment | None = None,
        end: Moment | None = None,
        user: str | None = None,
        team: str | None = None,
        model: str | None = None,
        status: int | None = None,
        error_code: str | None = None,
        decision: str | None = None,
        finding: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AuditPage:
        """A page of the caller's tenant's audit rows, newest first (``GET /api/v1/audit``,
        as far as the policy allows: auditors and administrators by default); pass the
        page's ``next_cursor`` as ``cursor`` for the next one."""
        params = _core.audit_params(
            {"start": start, "end": end, "user": user, "team": team, "model": model,
             "status": status, "error_code": error_code, "decision": decision,
             "finding": finding, "limit": limit, "cursor": cursor}
        )  # fmt: skip
        return self._parse(AuditPage, Call("GET", "/api/v1/audit", params=params))

    def audit_record(self, request_id: str) -> AuditRecord:
        """One request's audit row (:class:`~llm_gateway_sdk.errors.NotFound` if none)."""
        path = f"/api/v1/audit/{_core.path_id(request_id)}"
        return self._parse(AuditRecord, Call("GET", path))

    def check_grounding(
        self,
        messages: Messages,
        answer: str,
        *,
        logprobs: Sequence[float] | None = None,
        **options: Any,
    ) -> GroundingVerdict:
        """Is ``answer`` grounded in the tool results of ``messages`` (OpenAI Chat Completions
        messages)? ``options`` override the gateway's (``require_tool_citation=True``,
        ``max_unsupported_claims=0``, ...) for this call."""
        body = _core.grounding_body(messages, answer, logprobs, options)
        return self._parse(GroundingVerdict, Call("POST", "/api/v1/guardrails/grounding", body))

    # --- plumbing ---------------------------------------------------------------

    def _parse(self, model: type[_core.M], call: Call) -> _core.M:
        response = self._send(call)
        return _core.parse(model, _core.json_of(response), response)

    def _send(self, call: Call) -> httpx.Response:
        """One call with its retries: a 2xx answer (unread when streamed), or a typed error."""
        settings = self._settings
        request = self._http.build_request(
            call.method, settings.api_url + call.path, json=call.body, params=call.params,
            headers={**settings.base_headers(), **(call.headers or {})},
            timeout=settings.timeout,
        )  # fmt: skip
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=call.stream)
            except _core.HTTPX_ERRORS as exc:
                wait = _core.retry_after_failure(settings, attempt, call, exc)
                if wait is None:
                    raise _core.transport_error(exc, settings) from None
            else:
                if response.is_success:
                    return response
                try:
                    response.read()
                except _core.HTTPX_ERRORS as exc:
                    raise _core.transport_error(exc, settings) from None
                finally:
                    response.close()
                wait = _core.retry_wait(settings, attempt, response)
                if wait is None:
                    raise _core.error_of(response)
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` given to the constructor)."""
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncGateway(_Base):
    """The asyncio client: the same API as :class:`Gateway`, every call awaited.

    ``async with AsyncGateway() as gateway: answer = await gateway.chat(...)``;
    a stream is ``async for item in await gateway.chat(..., stream=True)``.
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT_S,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        max_retry_wait: float = _core.DEFAULT_MAX_RETRY_WAIT_S,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_url, api_key, timeout=timeout, max_retries=max_retries,
                         max_retry_wait=max_retry_wait, headers=headers)  # fmt: skip
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self._settings.timeout)

    @overload
    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        conversation_id: str | None = None,
        environment: str | None = None,
        mfa_code: str | None = None,
        raise_on_confirmation: bool = False,
        **options: Any,
    ) -> ChatResponse: ...

    @overload
    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        stream: Literal[True],
        max_tokens: int | None = None,
        temperature: float | None = None,
        conversation_id: str | None = None,
        environment: str | None = None,
        mfa_code: str | None = None,
        raise_on_confirmation: bool = False,
        **options: Any,
    ) -> AsyncChatStream: ...

    async def chat(  # noqa: PLR0913 (the native API's fields and headers)
        self,
        model: str,
        messages: Messages,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        conversation_id: str | None = None,
        environment: str | None = None,
        mfa_code: str | None = None,
        raise_on_confirmation: bool = False,
        **options: Any,
    ) -> ChatResponse | AsyncChatStream:
        """See :meth:`Gateway.chat`; a stream is an :class:`AsyncChatStream`."""
        call = _core.chat_call(
            model, messages, stream=stream, max_tokens=max_tokens, temperature=temperature,
            conversation_id=conversation_id, environment=environment, mfa_code=mfa_code,
            options=options,
        )  # fmt: skip
        response = await self._send(call)
        if stream:
            return AsyncChatStream(response, self._settings)
        return _core.chat_response(response, raise_on_confirmation)

    async def models(self) -> list[ModelInfo]:
        """See :meth:`Gateway.models`."""
        response = await self._send(Call("GET", "/v1/models"))
        body = _core.json_of(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise _core.unexpected(response, "no list of models")
        return [_core.parse(ModelInfo, item, response) for item in data]

    async def scan(self, text: str, redact: bool = False) -> ScanResult:
        """See :meth:`Gateway.scan`."""
        call = Call("POST", "/api/v1/dlp/scan", {"text": text, "redact": redact})
        return await self._parse(ScanResult, call)

    async def usage(
        self,
        group_by: str = "user",
        *,
        start: Moment | None = None,
        end: Moment | None = None,
        user: str | None = None,
    ) -> UsageReport:
        """See :meth:`Gateway.usage`."""
        params = _core.usage_params(group_by, start, end, user)
        return await self._parse(UsageReport, Call("GET", "/api/v1/usage", params=params))

    async def limits(self) -> Limits:
        """See :meth:`Gateway.limits`."""
        return await self._parse(Limits, Call("GET", "/api/v1/limits"))

    async def confirmations(self) -> list[Confirmation]:
        """See :meth:`Gateway.confirmations`."""
        response = await self._send(Call("GET", "/api/v1/confirmations"))
        body = _core.json_of(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise _core.unexpected(response, "no list of confirmations")
        return [_core.parse(Confirmation, item, response) for item in data]

    async def confirmation(self, confirmation_id: str) -> Confirmation:
        """See :meth:`Gateway.confirmation`."""
        path = f"/api/v1/confirmations/{_core.path_id(confirmation_id)}"
        return await self._parse(Confirmation, Call("GET", path))

    async def confirm(
        self, confirmation_id: str, phrase: str, mfa_code: str | None = None
    ) -> Confirmation:
        """See :meth:`Gateway.confirm`."""
        body: dict[str, Any] = {"phrase": phrase}
        if mfa_code is not None:
            body["mfa_code"] = mfa_code
        path = f"/api/v1/confirmations/{_core.path_id(confirmation_id)}/confirm"
        return await self._parse(Confirmation, Call("POST", path, body, idempotent=False))

    async def cancel(self, confirmation_id: str) -> Confirmation:
        """See :meth:`Gateway.cancel`."""
        path = f"/api/v1/confirmations/{_core.path_id(confirmation_id)}/cancel"
        return await self._parse(Confirmation, Call("POST", path, {}, idempotent=False))

    async def audit(  # noqa: PLR0913 (one argument per filter of the audit API)
        self,
        *,
        start: Moment | None = None,
        end: Moment | None = None,
        user: str | None = None,
        team: str | None = None,
        model: str | None = None,
        status: int | None = None,
        error_code: str | None = None,
        decision: str | None = None,
        finding: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AuditPage:
        """A page of the caller's tenant's audit rows, newest first (``GET /api/v1/audit``,
        as far as the policy allows: auditors and administrators by default); pass the
        page's ``next_cursor`` as ``cursor`` for the next one."""
        params = _core.audit_params(
            {"start": start, "end": end, "user": user, "team": team, "model": model,
             "status": status, "error_code": error_code, "decision": decision,
             "finding": finding, "limit": limit, "cursor": cursor}
        )  # fmt: skip
        return await self._parse(AuditPage, Call("GET", "/api/v1/audit", params=params))

    async def audit_record(self, request_id: str) -> AuditRecord:
        """One request's audit row (:class:`~llm_gateway_sdk.errors.NotFound` if none)."""
        path = f"/api/v1/audit/{_core.path_id(request_id)}"
        return await self._parse(AuditRecord, Call("GET", path))

    async def check_grounding(
        self,
        messages: Messages,
        answer: str,
        *,
        logprobs: Sequence[float] | None = None,
        **options: Any,
    ) -> GroundingVerdict:
        """See :meth:`Gateway.check_grounding`."""
        body = _core.grounding_body(messages, answer, logprobs, options)
        call = Call("POST", "/api/v1/guardrails/grounding", body)
        return await self._parse(GroundingVerdict, call)

    async def _parse(self, model: type[_core.M], call: Call) -> _core.M:
        response = await self._send(call)
        return _core.parse(model, _core.json_of(response), response)

    async def _send(self, call: Call) -> httpx.Response:
        """See :meth:`Gateway._send`."""
        settings = self._settings
        request = self._http.build_request(
            call.method, settings.api_url + call.path, json=call.body, params=call.params,
            headers={**settings.base_headers(), **(call.headers or {})},
            timeout=settings.timeout,
        )  # fmt: skip
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=call.stream)
            except _core.HTTPX_ERRORS as exc:
                wait = _core.retry_after_failure(settings, attempt, call, exc)
                if wait is None:
                    raise _core.transport_error(exc, settings) from None
            else:
                if response.is_success:
                    return response
                try:
                    await response.aread()
                except _core.HTTPX_ERRORS as exc:
                    raise _core.transport_error(exc, settings) from None
                finally:
                    await response.aclose()
                wait = _core.retry_wait(settings, attempt, response)
                if wait is None:
                    raise _core.error_of(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def close(self) -> None:
        """Close the connections (not those of an ``http_client`` given to the constructor)."""
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
