"""From a verified token's claims to a Principal, through an issuer's claim mapping.

A mapping (``config.identity.ClaimMapping``) names, as dotted paths, the claims
that give the user (default ``sub``), tenant, team, role, tier, groups and
environment: ``realm_access.roles`` (Keycloak), ``roles`` (Entra ID),
``groups`` (Okta). With no mapping the claims are read as for the gateway's
own tokens (``sub``, ``role``, ``tier``, ``team``, ``tenant``, ``groups``).

A role or tier read through a table (``roles``/``tiers``) may be a string or a
list of strings: the first entry *of the table*, in the file's order, that the
value names wins, so the result does not depend on the order the IdP lists
groups in; no entry named: the default. Without a table the claim must be a
string (a list needs a table to say which of its items counts).

The token's whole claim set goes with the principal as ``input.user.claims``,
bounded: claims are kept in the token's order while their JSON stays within
:data:`MAX_CLAIMS_BYTES`; any claim that would cross it is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson

from llm_gateway.auth.principal import Principal
from llm_gateway.config.identity import ClaimMapping
from llm_gateway.errors import AuthenticationFailed

MAX_CLAIMS_BYTES = 16 * 1024
DEFAULT_MAPPING = ClaimMapping()

Method = Literal["jwt", "oidc", "introspection"]


def claim_at(claims: Mapping[str, Any], path: str | None) -> Any:
    """The value at a dotted path (``realm_access.roles``), or None."""
    if path is None:
        return None
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def bounded(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The claims, in order, while their JSON stays within MAX_CLAIMS_BYTES."""
    kept: dict[str, Any] = {}
    size = 2
    for name, value in claims.items():
        try:
            cost = len(orjson.dumps({name: value})) - 1
        except TypeError:
            continue
        if size + cost > MAX_CLAIMS_BYTES:
            continue
        kept[name] = value
        size += cost
    return kept


def _invalid(names: list[str]) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"the bearer token's claims are not acceptable: {', '.join(names)} must be strings",
        code="invalid_claims",
    )


def _string(claims: Mapping[str, Any], path: str | None, bad: list[str]) -> str | None:
    value = claim_at(claims, path)
    if value is None:
        return None
    if not isinstance(value, str):
        bad.append(str(path))
        return None
    return value


def _mapped(
    claims: Mapping[str, Any],
    path: str | None,
    table: Mapping[str, str] | None,
    bad: list[str],
) -> str | None:
    """The claim's value through its table (first table entry the value names), or as is."""
    if table is None:
        return _string(claims, path, bad)
    value = claim_at(claims, path)
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        bad.append(str(path))
        return None
    present = set(names)
    return next((ours for theirs, ours in table.items() if theirs in present), None)


def principal_of(
    claims: Mapping[str, Any],
    mapping: ClaimMapping = DEFAULT_MAPPING,
    method: Method = "jwt",
) -> Principal:
    """The principal the claims describe; 401 ``invalid_claims`` for values of the wrong type."""
    bad: list[str] = []
    user = _string(claims, mapping.user, bad)
    if not user and mapping.user not in bad:
        bad.append(mapping.user)
    groups_value = claim_at(claims, mapping.groups)
    groups: list[str] = []
    if isinstance(groups_value, str):
        groups = [groups_value]
    elif isinstance(groups_value, list) and all(isinstance(g, str) for g in groups_value):
        groups = groups_value
    elif groups_value is not None:
        bad.append(str(mapping.groups))
    tenant = _string(claims, mapping.tenant, bad)
    team = _string(claims, mapping.team, bad)
    environment = _string(claims, mapping.environment, bad)
    role = _mapped(claims, mapping.role, mapping.roles, bad)
    tier = _mapped(claims, mapping.tier, mapping.tiers, bad)
    if bad:
        raise _invalid(bad)
    return Principal(
        user_id=str(user),
        role=role or mapping.default_role,
        tier=tier or mapping.default_tier,
        team=team,
        tenant=tenant,
        groups=tuple(groups),
        auth_method=method,
        environment=environment,
        # Any role claim, even one the mapping's table does not name, keeps the directory's
        # role out: a directory lookup never changes the role of a credential that has one.
        role_claimed=claim_at(claims, mapping.role) is not None,
        claims=bounded(claims),
    )
