"""Python client for the LLM Security Gateway.

    from llm_gateway_sdk import Gateway

    gateway = Gateway(api_url="http://localhost:8080", api_key="your_api_key")
    response = gateway.chat(model="claude-3-sonnet",
                            messages=[{"role": "user", "content": "Analyze this data"}])
    print(response.content, response.tokens_used, response.cost)

:class:`Gateway` blocks, :class:`AsyncGateway` is its asyncio twin; both
raise only :class:`GatewayError` and its subclasses (see
:mod:`llm_gateway_sdk.errors`) and answer with the pydantic models of
:mod:`llm_gateway_sdk.types`.
"""

from llm_gateway_sdk._core import __version__
from llm_gateway_sdk.client import AsyncChatStream, AsyncGateway, ChatStream, Gateway
from llm_gateway_sdk.errors import (
    AuthenticationError,
    BudgetExceeded,
    ConfirmationNotFound,
    ConfirmationRefused,
    ConfirmationRequired,
    DlpBlocked,
    GatewayConnectionError,
    GatewayError,
    GatewayTimeout,
    GroundingFailed,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    PolicyDenied,
    ProtocolError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamRateLimited,
)
from llm_gateway_sdk.types import (
    AuditPage,
    AuditRecord,
    ChatChunk,
    ChatResponse,
    ChatSummary,
    Confirmation,
    GroundingClaim,
    GroundingPhrase,
    GroundingUncited,
    GroundingVerdict,
    Limits,
    LimitScope,
    LimitState,
    ModelInfo,
    ScanFinding,
    ScanResult,
    UsageReport,
    UsageRow,
)

__all__ = [
    "AsyncChatStream",
    "AsyncGateway",
    "AuditPage",
    "AuditRecord",
    "AuthenticationError",
    "BudgetExceeded",
    "ChatChunk",
    "ChatResponse",
    "ChatStream",
    "ChatSummary",
    "Confirmation",
    "ConfirmationNotFound",
    "ConfirmationRefused",
    "ConfirmationRequired",
    "DlpBlocked",
    "Gateway",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayTimeout",
    "GroundingClaim",
    "GroundingFailed",
    "GroundingPhrase",
    "GroundingUncited",
    "GroundingVerdict",
    "InternalError",
    "InvalidRequest",
    "LimitScope",
    "LimitState",
    "Limits",
    "ModelInfo",
    "ModelNotFound",
    "NotFound",
    "PermissionDenied",
    "PolicyDenied",
    "ProtocolError",
    "RateLimited",
    "ScanFinding",
    "ScanResult",
    "ServiceUnavailable",
    "UpstreamError",
    "UpstreamRateLimited",
    "UsageReport",
    "UsageRow",
    "__version__",
]
