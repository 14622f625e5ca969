"""What the sync and async clients share: settings, requests, retries, answers and errors.

Nothing here does I/O: the clients send, sleep and read; this module decides.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from llm_gateway_sdk.errors import (
    ConfirmationRequired,
    GatewayConnectionError,
    GatewayError,
    GatewayTimeout,
    ProtocolError,
    error_class,
)
from llm_gateway_sdk.types import ChatChunk, ChatResponse, ChatSummary

__version__ = "0.1.0"

DEFAULT_URL = "http://localhost:8080"
URL_VARIABLE = "LLM_GATEWAY_URL"
KEY_VARIABLE = "LLM_GATEWAY_API_KEY"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 2
#: The longest ``Retry-After`` the client waits out; a longer one is raised at once.
DEFAULT_MAX_RETRY_WAIT_S = 30.0
#: Exponential backoff without a ``Retry-After``: 0.5 s, 1 s, 2 s, ... at most 8 s, jittered.
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
#: The statuses retried: the gateway refused before calling a model (or the model refused).
RETRY_STATUSES = frozenset({429, 503})

Messages = Sequence[Mapping[str, Any]]
Moment = str | date | datetime
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Settings:
    """A client's settings, resolved from its arguments and the environment."""

    api_url: str
    api_key: str | None
    timeout: httpx.Timeout
    max_retries: int
    max_retry_wait: float
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        api_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        max_retry_wait: float,
        headers: Mapping[str, str] | None,
    ) -> Settings:
        url = api_url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE)
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if isinstance(timeout, httpx.Timeout):
            resolved = timeout
        else:
            resolved = httpx.Timeout(DEFAULT_TIMEOUT_S if timeout is None else timeout)
        return cls(url.rstrip("/"), key or None, resolved, max_retries, max_retry_wait,
                   dict(headers or {}))  # fmt: skip

    def base_headers(self) -> dict[str, str]:
        headers = {"user-agent": f"llm-gateway-sdk/{__version__}", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return {**headers, **self.headers}


@dataclass(frozen=True, slots=True)
class Call:
    """One API call: what to send, and whether a repeat of it is harmless.

    ``idempotent`` calls (reads, scans, grounding checks) are retried on any
    connection failure; the others (chat, confirm, cancel) only when the request
    cannot have been received (the connection was never made). Both are retried
    on 429 and 503, which the gateway answers before it acts.
    """

    method: str
    path: str
    body: Any = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = True
    stream: bool = False


def chat_call(  # noqa: PLR0913 (chat's keyword arguments, passed on)
    model: str,
    messages: Messages,
    *,
    stream: bool,
    max_tokens: int | None,
    temperature: float | None,
    conversation_id: str | None,
    environment: str | None,
    mfa_code: str | None,
    options: Mapping[str, Any],
) -> Call:
    """``POST /api/v1/chat`` for :meth:`Gateway.chat`."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise TypeError('messages must be a list of {"role", "content"} dicts')
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    body.update(options)
    if stream:
        body["stream"] = True
    headers: dict[str, str] = {}
    if conversation_id is not None:
        headers["x-conversation-id"] = conversation_id
    if environment is not None:
        headers["x-environment"] = environment
    if mfa_code is not None:
        headers["x-gateway-mfa"] = mfa_code
    if stream:
        headers["accept"] = "text/event-stream"
    return Call("POST", "/api/v1/chat", body, headers=headers, idempotent=False, stream=stream)


def usage_params(
    group_by: str, start: Moment | None, end: Moment | None, user: str | None
) -> dict[str, str]:
    params = {"group_by": group_by}
    if start is not None:
        params["from"] = _moment(start)
    if end is not None:
        params["to"] = _moment(end)
    if user is not None:
        params["user"] = user
    return params


def audit_params(filters: Mapping[str, Any]) -> dict[str, str]:
    """``GET /api/v1/audit``'s query: ``start``/``end`` as ``from``/``to``, the rest as given."""
    params: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        key = {"start": "from", "end": "to"}.get(name, name)
        params[key] = _moment(value) if name in ("start", "end") else str(value)
    return params


def _moment(value: Moment) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def grounding_body(
    messages: Messages,
    answer: str,
    logprobs: Sequence[float] | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [dict(m) for m in messages], "answer": answer}
    if options:
        body["options"] = dict(options)
    if logprobs is not None:
        body["logprobs"] = list(logprobs)
    return body


def path_id(value: str) -> str:
    """A confirmation id as a path segment (an id with a slash would name another path)."""
    from urllib.parse import quote

    return quote(value, safe="")


# --- answers ------------------------------------------------------------------------


def header(response: httpx.Response, name: str) -> str | None:
    """A header of the answer, or None."""
    value = response.headers.get(name)
    return str(value) if value is not None else None


def request_id_of(response: httpx.Response) -> str | None:
    return header(response, "x-request-id")


def json_of(response: httpx.Response) -> Any:
    """The answer's JSON, or :class:`ProtocolError` when it is not JSON (a proxy's page)."""
    try:
        return json.loads(response.content)
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise ProtocolError(
            f"the answer is not JSON (HTTP {response.status_code}, {kind}): "
            "is this the gateway's URL, or is a proxy in between answering?",
            status=response.status_code, request_id=request_id_of(response),
        ) from None  # fmt: skip


def parse(model: type[M], data: Any, response: httpx.Response) -> M:
    """``data`` as ``model``, or :class:`ProtocolError` when it is not that shape."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        what = f"{model.__name__}: {exc.error_count()} invalid fields"
        raise unexpected(response, what) from None


def unexpected(response: httpx.Response, what: str) -> ProtocolError:
    return ProtocolError(
        f"the answer is not what the gateway sends ({what})",
        status=response.status_code, request_id=request_id_of(response),
    )  # fmt: skip


def chat_response(response: httpx.Response, raise_on_confirmation: bool) -> ChatResponse:
    body = json_of(response)
    if not isinstance(body, dict):
        raise unexpected(response, "not an object")
    try:
        answer = ChatResponse.from_wire(body, request_id_of(response))
    except (ValidationError, AttributeError):
        raise unexpected(response, "not a chat answer") from None
    if raise_on_confirmation and answer.confirmation is not None:
        raise ConfirmationRequired(answer, answer.confirmation)
    return answer


def error_of(response: httpx.Response) -> GatewayError:
    """The typed error for a non-2xx answer, in any of the gateway's three error formats."""
    request_id = request_id_of(response)
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        kind = response.headers.get("content-type", "no content type")
        cls = error_class(None, status)
        if not response.content or body is None:
            message = (
                f"HTTP {status} with a body that is not the gateway's JSON ({kind}): "
                "a proxy in between, or not the gateway's URL"
            )
            # Not the gateway's answer: a ProtocolError, unless it is a retryable status
            # whose meaning is clear whoever sent it (a proxy's 503 page is still a 503).
            if status not in RETRY_STATUSES:
                return ProtocolError(message, status=status, request_id=request_id)
        else:
            message = f"HTTP {status}: an error without the gateway's error object"
        return cls(message, status=status, request_id=request_id,
                   retry_after=retry_after_of(response))  # fmt: skip
    return error_from_object(error, status, request_id, retry_after_of(response))


_STANDARD_FIELDS = frozenset({"type", "code", "message", "request_id", "param"})


def error_from_object(
    error: Mapping[str, Any],
    status: int | None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> GatewayError:
    """A typed error from an ``{"type", "code", "message", "request_id", ...}`` object."""
    code = error.get("code") if isinstance(error.get("code"), str) else None
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    given_id = error.get("request_id")
    param = error.get("param")
    cls = error_class(code, status, kind)
    details = {k: v for k, v in error.items() if k not in _STANDARD_FIELDS}
    return cls(
        message or f"the gateway answered {status} ({code or kind or 'no code'})",
        code=code or (kind if cls is GatewayError else None),
        status=status,
        request_id=given_id if isinstance(given_id, str) else request_id,
        details=details,
        param=param if isinstance(param, str) else None,
        retry_after=retry_after,
    )


def retry_after_of(response: httpx.Response) -> float | None:
    """The wait the answer asks for, in seconds: ``retry-after-ms``, else ``retry-after``."""
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


# --- retries ------------------------------------------------------------------------


def backoff(attempt: int) -> float:
    """The wait before retry ``attempt`` (0-based), no ``Retry-After``: exponential, jittered."""
    ceiling = min(BACKOFF_BASE_S * 2.0**attempt, BACKOFF_MAX_S)
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not a secret)


def retry_wait(settings: Settings, attempt: int, response: httpx.Response) -> float | None:
    """How long to wait before retrying this answer, or None: not to be retried."""
    if attempt >= settings.max_retries or response.status_code not in RETRY_STATUSES:
        return None
    if response.headers.get("x-should-retry", "").lower() == "false":
        return None  # a month's budget: no retry can help
    wait = retry_after_of(response)
    if wait is None:
        return backoff(attempt)
    if wait > settings.max_retry_wait:
        return None  # a retry sooner would be refused: the error says how long
    return wait + random.uniform(0, min(0.25, wait / 10 + 0.05))  # noqa: S311 (jitter)


#: Failures after which the request cannot have reached the gateway.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retry_after_failure(
    settings: Settings, attempt: int, call: Call, exc: Exception
) -> float | None:
    """How long to wait before retrying after ``exc`` (no answer), or None."""
    if attempt >= settings.max_retries or isinstance(exc, httpx.UnsupportedProtocol):
        return None  # (a URL that is not http or https: no retry can help)
    if isinstance(exc, _NOT_SENT) or (call.idempotent and isinstance(exc, httpx.TransportError)):
        return backoff(attempt)
    return None


def transport_error(exc: Exception, settings: Settings) -> GatewayError:
    """An ``httpx`` failure as the SDK's own error."""
    url = settings.api_url
    if isinstance(exc, httpx.TimeoutException):
        what = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
        return GatewayTimeout(f"timed out {what} the gateway at {url}")
    if isinstance(exc, httpx.ConnectError):
        return GatewayConnectionError(f"cannot connect to the gateway at {url}: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProtocolError(f"the gateway at {url} broke the HTTP protocol: {exc}")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return GatewayConnectionError(f"not a usable gateway URL: {url!r} ({exc})")
    return GatewayConnectionError(f"the connection to the gateway at {url} failed: {exc}")


#: What the clients catch around httpx (``InvalidURL`` and ``StreamError``, a stream read
#: twice or after its close, are not ``HTTPError``).
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)


# --- streams ------------------------------------------------------------------------


@dataclass(slots=True)
class SSEParser:
    """Server-sent events from lines (WHATWG framing: ``event``, ``data``, comments)."""

    event: str = ""
    data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, str] | None:
        """One line in; an ``(event, data)`` when a blank line completes one."""
        if not line:
            if not self.data:
                self.event = ""
                return None
            done = (self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        return None

    def end(self) -> tuple[str, str] | None:
        """An event the stream's end left without its blank line (delivered, not lost)."""
        return self.feed("") if self.data else None


@dataclass(slots=True)
class StreamState:
    """A native stream's progress: turns its events into chunks, the summary, or errors."""

    response: httpx.Response
    parser: SSEParser = field(default_factory=SSEParser)
    parts: list[str] = field(default_factory=list)
    summary: ChatSummary | None = None
    finished: bool = False

    def check_start(self) -> None:
        kind = self.response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            raise ProtocolError(
                f"a stream was asked for, but the answer is {kind or 'of no content type'}",
                status=self.response.status_code, request_id=request_id_of(self.response),
            )  # fmt: skip

    def lines(self, line: str) -> Iterator[ChatChunk | ChatSummary]:
        """The items that ``line`` completes (raising the stream's ``error`` event)."""
        if self.finished:
            return
        event = self.parser.feed(line.rstrip("\r"))
        if event is not None:
            yield from self._event(*event)

    def ended(self) -> Iterator[ChatChunk | ChatSummary]:
        """The stream's bytes ended: its last event, or a :class:`ProtocolError` if cut."""
        if not self.finished:
            event = self.parser.end()
            if event is not None:
                yield from self._event(*event)
        if not self.finished:
            self.finished = True
            raise ProtocolError(
                "the stream ended before its done event (the connection was cut)",
                status=self.response.status_code, request_id=request_id_of(self.response),
            )  # fmt: skip

    def cut(self, exc: Exception) -> ProtocolError | GatewayTimeout:
        """A failure while reading the stream."""
        self.finished = True
        request_id = request_id_of(self.response)
        if isinstance(exc, httpx.TimeoutException):
            return GatewayTimeout("the stream stopped: no data within the timeout",
                                  request_id=request_id)  # fmt: skip
        if isinstance(exc, httpx.StreamError):
            return ProtocolError(
                "the stream was closed before its done event",
                status=self.response.status_code, request_id=request_id,
            )  # fmt: skip
        return ProtocolError(f"the stream was cut before its done event: {exc}",
                             status=self.response.status_code, request_id=request_id)  # fmt: skip

    def _event(self, name: str, data: str) -> Iterator[ChatChunk | ChatSummary]:
        try:
            payload = json.loads(data)
        except ValueError:
            self.finished = True
            raise unexpected(self.response, f"a {name} event whose data is not JSON") from None
        if not isinstance(payload, dict):
            self.finished = True
            raise unexpected(self.response, f"a {name} event that is not an object")
        if name == "delta":
            text = payload.get("text")
            if not isinstance(text, str):
                self.finished = True
                raise unexpected(self.response, "a delta event without text")
            self.parts.append(text)
            yield ChatChunk(text=text)
        elif name == "done":
            self.finished = True
            self.summary = self._summary(payload)
            yield self.summary
        elif name == "error":
            self.finished = True
            error = payload.get("error")
            if not isinstance(error, dict):
                raise unexpected(self.response, "an error event without its error object")
            raise error_from_object(error, None, request_id_of(self.response))
        # any other event: ignored (a newer gateway's addition)

    def _summary(self, payload: dict[str, Any]) -> ChatSummary:
        metadata = payload.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise unexpected(self.response, "a done event whose metadata is not an object")
        data = {
            **metadata,
            "model": payload.get("model"),
            "content": "".join(self.parts),
            "request_id": metadata.get("request_id") or request_id_of(self.response),
            "confirmation_id": header(self.response, "x-confirmation-id"),
        }
        try:
            return ChatSummary.model_validate(data)
        except ValidationError:
            raise unexpected(self.response, "a done event that is not a summary") from None
