"""The exceptions the SDK raises: one tree, mirroring the gateway's stable error codes.

Every failure of a call is a :class:`GatewayError`, never a raw ``httpx``,
``KeyError`` or ``json`` exception::

    GatewayError(message, code, status, request_id)
    ├── AuthenticationError       401  missing, expired, revoked ... credentials
    ├── PermissionDenied          403
    │   ├── PolicyDenied          403  policy_denied / policy_error (``.reasons``)
    │   └── ConfirmationRefused   403  not yours to confirm, or no valid MFA code
    ├── InvalidRequest            400  (also 408, 413, 415)
    │   └── DlpBlocked            400  dlp_blocked (``.findings``)
    ├── NotFound                  404
    │   ├── ModelNotFound         404  model_not_found
    │   └── ConfirmationNotFound  404  confirmation_not_found
    ├── GroundingFailed           422  grounding_failed (``.failed``)
    ├── RateLimited               429  (``.retry_after``, ``.scope``)
    │   └── BudgetExceeded        429  token_budget_exceeded / cost_budget_exceeded
    ├── ServiceUnavailable        503  model_unavailable, dlp_unavailable, ...
    ├── InternalError             500
    ├── UpstreamError             502/504/...  upstream_* (the model's provider failed)
    │   └── UpstreamRateLimited   429  upstream_rate_limited (also a RateLimited)
    ├── ConfirmationRequired      the answer is a confirmation challenge (opt-in)
    ├── GatewayConnectionError    no answer: wrong URL, refused, reset, DNS
    │   └── GatewayTimeout        no answer in time
    └── ProtocolError             an answer that is not the gateway's: not JSON (a
                                  proxy's HTML page), a wrong shape, a cut stream
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_gateway_sdk.types import ChatResponse, Confirmation

__all__ = [
    "AuthenticationError",
    "BudgetExceeded",
    "ConfirmationNotFound",
    "ConfirmationRefused",
    "ConfirmationRequired",
    "DlpBlocked",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayTimeout",
    "GroundingFailed",
    "InternalError",
    "InvalidRequest",
    "ModelNotFound",
    "NotFound",
    "PermissionDenied",
    "PolicyDenied",
    "ProtocolError",
    "RateLimited",
    "ServiceUnavailable",
    "UpstreamError",
    "UpstreamRateLimited",
]


class GatewayError(Exception):
    """Base of every error the SDK raises.

    ``code`` is the gateway's stable error code (``policy_denied``,
    ``dlp_blocked``, ...), ``status`` the HTTP status (``None`` when no answer
    came), ``request_id`` the gateway's id of the request (its audit row), and
    ``details`` the error object's other fields (a policy's ``reasons``, the DLP
    rules that blocked, a rate limit's ``scope``).
    """

    #: The status an error of this class has when the gateway did not say (a stream's event).
    default_status: int | None = None
    default_code: str = "gateway_error"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status if status is not None else self.default_status
        self.request_id = request_id
        self.details: dict[str, Any] = dict(details or {})
        self.param = param
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status is not None else ""
        request = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} ({where}{self.code}{request})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"status={self.status!r}, request_id={self.request_id!r})"
        )


class AuthenticationError(GatewayError):
    """401: the credential is missing, malformed, expired, revoked or unknown."""

    default_status = 401
    default_code = "invalid_credentials"


class PermissionDenied(GatewayError):
    """403: the caller may not do this."""

    default_status = 403
    default_code = "permission_denied"


class PolicyDenied(PermissionDenied):
    """403 ``policy_denied`` (or ``policy_error``: no decision could be had, so denied)."""

    default_code = "policy_denied"

    @property
    def reasons(self) -> list[str]:
        """The policy's reasons, in its own words."""
        reasons = self.details.get("reasons")
        return [str(r) for r in reasons] if isinstance(reasons, list) else []


class ConfirmationRefused(PermissionDenied):
    """403 ``confirmation_refused``: not this caller's to confirm, or no valid MFA code."""

    default_code = "confirmation_refused"


class InvalidRequest(GatewayError):
    """400 (and 408, 413, 415): the request's body or parameters are wrong."""

    default_status = 400
    default_code = "invalid_request"


class DlpBlocked(InvalidRequest):
    """400 ``dlp_blocked``: a DLP rule blocks what the request carries."""

    default_code = "dlp_blocked"

    @property
    def findings(self) -> list[Any]:
        """The rules that blocked (never the values)."""
        findings = self.details.get("findings")
        return list(findings) if isinstance(findings, list) else []


class NotFound(GatewayError):
    """404: no such path, model or confirmation."""

    default_status = 404
    default_code = "not_found"


class ModelNotFound(NotFound):
    """404 ``model_not_found``."""

    default_code = "model_not_found"


class ConfirmationNotFound(NotFound):
    """404 ``confirmation_not_found``: expired, already decided, or another caller's."""

    default_code = "confirmation_not_found"


class GroundingFailed(GatewayError):
    """422 ``grounding_failed``: the answer is not grounded in its tool results (``block``)."""

    default_status = 422
    default_code = "grounding_failed"

    @property
    def failed(self) -> list[str]:
        """The checks that failed (never the content)."""
        failed = self.details.get("failed")
        return [str(f) for f in failed] if isinstance(failed, list) else []


class RateLimited(GatewayError):
    """429: a rate limit or budget; ``retry_after`` is the gateway's wait, in seconds."""

    default_status = 429
    default_code = "rate_limited"

    @property
    def scope(self) -> str | None:
        """The scope that is full: user, key, ip, tenant or team."""
        scope = self.details.get("scope")
        return scope if isinstance(scope, str) else None


class BudgetExceeded(RateLimited):
    """429 ``token_budget_exceeded`` or ``cost_budget_exceeded``: not retried (a month)."""

    default_code = "token_budget_exceeded"


class ServiceUnavailable(GatewayError):
    """503: no model can serve now, DLP or the limits' store cannot answer, shutting down."""

    default_status = 503
    default_code = "model_unavailable"


class InternalError(GatewayError):
    """500: the gateway failed."""

    default_status = 500
    default_code = "internal_error"


class UpstreamError(GatewayError):
    """The model's provider failed (``upstream_*`` codes: timeout, unreachable, ...)."""

    default_status = 502
    default_code = "upstream_error"


class UpstreamRateLimited(UpstreamError, RateLimited):
    """429 ``upstream_rate_limited``: the provider's own limit, with its ``retry_after``."""

    default_status = 429
    default_code = "upstream_rate_limited"


class ConfirmationRequired(GatewayError):
    """The gateway held the request for a person's confirmation.

    Raised only by ``chat(..., raise_on_confirmation=True)``; otherwise the
    challenge comes back as an answer whose ``confirmation`` is set.
    """

    default_status = 200
    default_code = "confirmation_required"

    def __init__(self, response: ChatResponse, confirmation: Confirmation) -> None:
        super().__init__(
            f"this request waits for confirmation {confirmation.id}: "
            f"type {confirmation.phrase!r} to proceed",
            status=200,
            request_id=response.request_id,
        )
        self.response = response
        self.confirmation = confirmation


class GatewayConnectionError(GatewayError):
    """No answer from the gateway: a wrong URL, a closed port, a reset, DNS."""

    default_code = "connection_error"


class GatewayTimeout(GatewayConnectionError):
    """The gateway did not answer (or a stream did not continue) within the timeout."""

    default_code = "timeout"


class ProtocolError(GatewayError):
    """An answer that is not the gateway's: not JSON, an unexpected shape, a cut stream."""

    default_code = "protocol_error"


_BY_CODE: dict[str, type[GatewayError]] = {
    "policy_denied": PolicyDenied,
    "policy_error": PolicyDenied,
    "confirmation_refused": ConfirmationRefused,
    "dlp_blocked": DlpBlocked,
    "model_not_found": ModelNotFound,
    "confirmation_not_found": ConfirmationNotFound,
    "grounding_failed": GroundingFailed,
    "token_budget_exceeded": BudgetExceeded,
    "cost_budget_exceeded": BudgetExceeded,
    "upstream_rate_limited": UpstreamRateLimited,
}

_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    408: InvalidRequest,
    413: InvalidRequest,
    415: InvalidRequest,
    422: GroundingFailed,
    429: RateLimited,
    500: InternalError,
    502: UpstreamError,
    503: ServiceUnavailable,
    504: UpstreamError,
}

#: The gateway's error types (``error.type``) -> a class, when neither code nor status says.
_BY_TYPE: dict[str, type[GatewayError]] = {
    "invalid_request": InvalidRequest,
    "too_large": InvalidRequest,
    "authentication": AuthenticationError,
    "permission": PermissionDenied,
    "not_found": NotFound,
    "rate_limit": RateLimited,
    "upstream": UpstreamError,
    "timeout": UpstreamError,
    "unavailable": ServiceUnavailable,
    "internal": InternalError,
}


def error_class(
    code: str | None, status: int | None, kind: str | None = None
) -> type[GatewayError]:
    """The class for a gateway error: by its stable code, else its status, else its type."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code and code.startswith("upstream_"):
        return UpstreamRateLimited if status == 429 else UpstreamError
    if status is not None and status in _BY_STATUS:
        return _BY_STATUS[status]
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    if status is not None and 500 <= status <= 599:
        return InternalError
    if status is not None and 400 <= status <= 499:
        return InvalidRequest
    return GatewayError
