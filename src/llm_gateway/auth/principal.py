"""Who is calling: the identity every later stage (policy, limits, audit) works from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str
    tier: str | None = None
    team: str | None = None
    tenant: str | None = None
    groups: tuple[str, ...] = field(default_factory=tuple)
    auth_method: Literal["jwt", "api_key", "oidc", "introspection"] = "jwt"
    key_id: str | None = None  # the API key's public id, never the key
    environment: str | None = None  # where this credential acts: the key's or token's own
    # The model names an API key may ask for (None: whatever the policy allows).
    allowed_models: tuple[str, ...] | None = None
    # False when the credential carried no role and ``role`` is a default: only then may
    # the directory's user record give the role (see auth.inheritance). True for API keys,
    # which always name theirs.
    role_claimed: bool = field(default=True, compare=False)
    # The token's claims (bounded, see auth.claims.bounded), as the policy's input.user.claims.
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
