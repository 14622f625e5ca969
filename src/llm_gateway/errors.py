"""Every failure the gateway reports to a caller, as one small exception tree.

Each front door renders a :class:`GatewayError` in its own wire format, but the
status, the stable ``code`` and the safe ``message`` are decided here, once. A
message never contains a credential, an upstream error body or prompt text:
it is written for the caller and is safe to log.

    GatewayError
    ├── InvalidRequest          400  the caller's body or parameters are wrong
    │   ├── BodyTooLarge        413
    │   ├── RequestTimeout      408  the body stopped arriving (the server closed)
    │   ├── UnsupportedMediaType 415  a body that is not declared as JSON
    │   ├── DlpBlocked          400  a DLP rule blocks what the request carries
    │   └── ClientClosedRequest 499  the client went away before its request was read
    ├── AuthenticationFailed    401  missing, malformed, expired, revoked ... credentials
    ├── PermissionDenied        403
    │   ├── PolicyDenied        403  the policy said no, with its reasons
    │   ├── PolicyFailed        403  no decision could be had: denied (fail closed)
    │   └── ConfirmationRefused 403  not this caller's to confirm (or no MFA code given)
    ├── NotFound                404  no such path
    │   ├── ModelNotFound       404
    │   └── ConfirmationNotFound 404  no open confirmation of that id for this caller
    ├── MethodNotAllowed        405
    ├── RateLimited             429  the gateway's own rate limits (``details["scope"]``)
    │   ├── TokenBudgetExceeded 429  the month's token budget would be crossed
    │   └── CostBudgetExceeded  429  the month's cost budget would be crossed
    ├── LimitsUnavailable       503  the limits' store cannot answer and a budget fails closed
    ├── ModelUnavailable        503  configured, but cannot be served right now
    │   ├── AllModelsDown       503  every candidate failed its health checks
    │   ├── AllCircuitsOpen     503  every candidate's circuit breaker is open
    │   └── AllModelsBusy       503  every candidate is at its max_concurrent
    ├── DlpUnavailable          503  a detector failed: refused (fail closed)
    ├── IdentityUnavailable     503  the identity provider cannot answer: refused (fail closed)
    ├── InternalError           500
    └── UpstreamError           a provider call failed; ``retryable`` tells routing
        ├── UpstreamTimeout             504
        ├── UpstreamUnreachable         502  connection refused / reset / DNS
        ├── UpstreamRateLimited         429  carries the provider's retry-after
        ├── UpstreamStatusError         any other non-2xx; 400 when the provider rejected
        │                               the request itself, 502 otherwise
        ├── UpstreamMalformedResponse   502  a body we cannot parse
        └── UpstreamStreamInterrupted   502  the stream ended without its terminal event
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """What sort of failure this is; front doors map it to their error ``type``."""

    INVALID_REQUEST = "invalid_request"
    TOO_LARGE = "too_large"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit"
    UPSTREAM = "upstream"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class GatewayError(Exception):
    """Base of every error a caller can see."""

    status: int = 500
    kind: ErrorKind = ErrorKind.INTERNAL
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.retry_after = retry_after
        # Structured, safe facts for the caller (a policy's reasons, the DLP rules
        # that blocked): added to the error object of every front door's format.
        self.details = details or {}


class InvalidRequest(GatewayError):
    status = 400
    kind = ErrorKind.INVALID_REQUEST
    code = "invalid_request"


class BodyTooLarge(InvalidRequest):
    status = 413
    kind = ErrorKind.TOO_LARGE
    code = "body_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    code = "request_timeout"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    code = "unsupported_media_type"


class ClientClosedRequest(InvalidRequest):
    """The client closed the connection before its request was complete (nginx's 499).

    Of the client's making, not the gateway's: audited as such, never as a 500.
    """

    status = 499
    code = "client_closed_request"


class AuthenticationFailed(GatewayError):
    status = 401
    kind = ErrorKind.AUTHENTICATION
    code = "invalid_credentials"


class PermissionDenied(GatewayError):
    status = 403
    kind = ErrorKind.PERMISSION
    code = "permission_denied"


class PolicyDenied(PermissionDenied):
    """The policy said no; ``details["reasons"]`` says why, in the policy's words."""

    code = "policy_denied"


class PolicyFailed(PermissionDenied):
    """No decision could be had (fail closed): the policy errs, or OPA does not answer."""

    code = "policy_error"


class DlpBlocked(InvalidRequest):
    """The request carries data a DLP rule blocks; ``details["findings"]`` names the rules."""

    code = "dlp_blocked"


class NotFound(GatewayError):
    status = 404
    kind = ErrorKind.NOT_FOUND
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ConfirmationNotFound(NotFound):
    """No open confirmation of this id that the caller may see (expired, decided, another's)."""

    code = "confirmation_not_found"


class ConfirmationRefused(PermissionDenied):
    """The caller may see this confirmation but not give it (not the requester, not an
    approver, the requester where approvers are named, no MFA code where one is needed)."""

    code = "confirmation_refused"


class MethodNotAllowed(GatewayError):
    status = 405
    kind = ErrorKind.INVALID_REQUEST
    code = "method_not_allowed"


class RateLimited(GatewayError):
    status = 429
    kind = ErrorKind.RATE_LIMIT
    code = "rate_limited"


class TokenBudgetExceeded(RateLimited):
    code = "token_budget_exceeded"


class CostBudgetExceeded(RateLimited):
    code = "cost_budget_exceeded"


class LimitsUnavailable(GatewayError):
    """The state store did not answer and a scope with a budget fails closed."""

    status = 503
    kind = ErrorKind.UNAVAILABLE
    code = "limits_unavailable"


class ModelUnavailable(GatewayError):
    status = 503
    kind = ErrorKind.UNAVAILABLE
    code = "model_unavailable"


class AllModelsDown(ModelUnavailable):
    """Every candidate failed its health checks."""

    code = "all_models_down"


class AllCircuitsOpen(ModelUnavailable):
    """Every candidate's circuit breaker is open: each failed too often, recently."""

    code = "all_circuits_open"


class AllModelsBusy(ModelUnavailable):
    """Every candidate is at its ``max_concurrent``, and none freed up in time."""

    code = "all_models_busy"


class DlpUnavailable(GatewayError):
    """A detector failed or overran its budget: the request is refused (fail closed)."""

    status = 503
    kind = ErrorKind.UNAVAILABLE
    code = "dlp_unavailable"


class IdentityUnavailable(GatewayError):
    """The identity provider (its keys, its introspection endpoint) did not answer in time,
    and nothing cached can stand in: the credential is refused (fail closed)."""

    status = 503
    kind = ErrorKind.UNAVAILABLE
    code = "identity_provider_unavailable"


class GroundingFailed(GatewayError):
    """The model's answer is not grounded in its tool results, and the action is ``block``.

    422, not 5xx: the SDKs retry a 5xx at once, and the same conversation would give
    the same answer; ``details["failed"]`` names the checks, never the content.
    """

    status = 422
    kind = ErrorKind.UPSTREAM
    code = "grounding_failed"


class ServerShutdown(GatewayError):
    """The server is stopping and its grace is running out: a stream still going is ended."""

    status = 503
    kind = ErrorKind.UNAVAILABLE
    code = "server_shutdown"


class InternalError(GatewayError):
    status = 500
    kind = ErrorKind.INTERNAL
    code = "internal_error"


class UpstreamError(GatewayError):
    """A provider call failed. ``retryable`` says whether another attempt may succeed."""

    status = 502
    kind = ErrorKind.UPSTREAM
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.upstream_status = upstream_status
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = ErrorKind.TIMEOUT
    code = "upstream_timeout"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamRateLimited(UpstreamError):
    status = 429
    kind = ErrorKind.RATE_LIMIT
    code = "upstream_rate_limited"


class UpstreamStatusError(UpstreamError):
    code = "upstream_error"


class UpstreamMalformedResponse(UpstreamError):
    code = "upstream_malformed_response"


class UpstreamStreamInterrupted(UpstreamError):
    code = "upstream_stream_interrupted"
