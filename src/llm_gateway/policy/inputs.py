"""The ``input`` document every policy decision is made on. Its shape is an API:
policies are written against it, so fields are added, never renamed or removed.

    {
      "action":  "chat" | "models.list" | "dlp.scan" | ...,
      "user":    {"id", "role", "tier", "team", "tenant", "groups", "auth_method", "claims"},
      "request": {"endpoint", "model", "stream", "tools", "estimated_tokens",
                  "max_tokens", "features"},
      "context": {"client_ip", "time", "environment"},
      "confirmation": {"id", "rule", "action", "scope", "scope_count", "environment",
                       "risk", "requires_mfa", "approvers", "requested_by", "relation"}
    }

``confirmation`` is there only when a ``confirmation.*`` action is about one;
``relation`` is the caller's to it: ``requester`` (they asked for it),
``approver`` (its rule names their role, and they did not ask), or ``other``:
then only a rule of the policy's own lets them act on it.

``user.claims`` is the caller's token's claims (a JWT's payload, an
introspection answer), bounded to 16 KiB of JSON (``auth.claims.bounded``);
``{}`` for an API key. ``user.auth_method`` is ``jwt`` (the gateway's own
tokens), ``oidc`` (a trusted issuer's), ``introspection`` or ``api_key``.

``request.features`` names what the call asks for beyond a plain completion
(``streaming``, ``tools``, ``json_output``), so that a policy can grant features
per group; ``request.tools`` lists the tool names offered to the model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llm_gateway.auth.principal import Principal
from llm_gateway.chat import ChatRequest
from llm_gateway.tokens import quick_estimate


def user_document(principal: Principal) -> dict[str, Any]:
    return {
        "id": principal.user_id,
        "role": principal.role,
        "tier": principal.tier,
        "team": principal.team,
        "tenant": principal.tenant,
        "groups": list(principal.groups),
        "auth_method": principal.auth_method,
        "claims": dict(principal.claims),
    }


def requested_features(chat: ChatRequest) -> list[str]:
    features = []
    if chat.stream:
        features.append("streaming")
    if chat.tools:
        features.append("tools")
    if chat.json_output:
        features.append("json_output")
    return features


def chat_input(
    principal: Principal,
    chat: ChatRequest,
    *,
    endpoint: str,
    client_ip: str | None,
    environment: str,
) -> dict[str, Any]:
    """The input for a call to a model."""
    return {
        "action": "chat",
        "user": user_document(principal),
        "request": {
            "endpoint": endpoint,
            "model": chat.model,
            "stream": chat.stream,
            "tools": [tool.name for tool in chat.tools],
            "estimated_tokens": quick_estimate(chat.texts()),
            "max_tokens": chat.max_tokens,
            "features": requested_features(chat),
        },
        "context": context_document(client_ip, environment),
    }


def action_input(
    principal: Principal,
    action: str,
    *,
    model: str | None = None,
    scope: str | None = None,
    client_ip: str | None,
    environment: str,
) -> dict[str, Any]:
    """The input for anything else: listing models, scanning text, reading usage.

    ``model`` is the model a listing asks about; ``scope`` the part of the data a
    read asks for (``own``: the caller's own; ``tenant``: their tenant's).
    """
    return {
        "action": action,
        "user": user_document(principal),
        "request": {"endpoint": action, "model": model, "scope": scope, "stream": False,
                    "tools": [], "estimated_tokens": 0, "max_tokens": None, "features": []},
        "context": context_document(client_ip, environment),
    }  # fmt: skip


def context_document(client_ip: str | None, environment: str) -> dict[str, Any]:
    return {
        "client_ip": client_ip,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "environment": environment,
    }
