"""``config/rate_limits.yaml``: requests per minute, tokens and dollars a month, by tier and scope.

The specification's format, loaded unchanged::

    tiers:
      free:
        requests_per_minute: 10
        tokens_per_month: 100000
        models: ["gpt-3.5-turbo"]

Everything else is an optional addition:

- per tier, ``cost_per_month_usd`` (a USD budget per user of the tier, from
  ``config/pricing.yaml``), ``queue`` (``max_wait_ms``, ``max_size``: how long
  and how many of a user's requests over the rate may wait for a free slot
  before they are refused) and ``on_store_error`` (``open`` or ``closed``);
- ``default_tier``: the tier of a caller whose credential names no tier, or one
  this file does not define (without it, such a caller has RATE_LIMIT_PER_USER
  and no token or cost budget);
- ``scopes``: limits for the other scopes, ``tenant``, ``team``, ``key`` (an API
  key's id) and ``ip``, each a map from an id to its limits, ``default``
  applying to every id not listed (and a listed id taking what it does not set
  from ``default``).

A limit is a non-negative number or ``unlimited``; a limit not written is the
environment's default for requests per minute (RATE_LIMIT_PER_USER, _TENANT,
_KEY, _IP) and none for budgets. A tier's ``models`` is informational: the
policy (``data.access``) decides which models a caller may use, and
``llm-gateway check-config`` reports where the two files disagree.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["UNLIMITED", "Limits", "LimitsFile", "Queue", "Tier"]

UNLIMITED = "unlimited"

Count = Annotated[int, Field(ge=0, strict=True)] | Literal["unlimited"]
Dollars = Annotated[float, Field(ge=0, allow_inf_nan=False)] | Literal["unlimited"]


class Queue(BaseModel):
    """Requests over the rate wait up to ``max_wait_ms`` for a slot, ``max_size`` at a time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_wait_ms: Annotated[int, Field(ge=1, le=60_000)]
    max_size: Annotated[int, Field(ge=1, le=10_000)] = 100


class Limits(BaseModel):
    """One scope's limits; ``None`` means the file does not say."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: Count | None = None
    tokens_per_month: Count | None = None
    cost_per_month_usd: Dollars | None = None
    # What happens to this scope's requests while the state store cannot answer;
    # unset: closed when the scope has a token or cost budget, open otherwise.
    on_store_error: Literal["open", "closed"] | None = None

    def over(self, base: Limits) -> Limits:
        """These limits, taking from ``base`` what they do not set (of a tier: its limits
        only, not its models or queue)."""
        fields = set(Limits.model_fields)
        return Limits.model_validate(
            {
                **base.model_dump(include=fields, exclude_none=True),
                **self.model_dump(include=fields, exclude_none=True),
            }
        )


class Tier(Limits):
    models: list[str] = Field(default_factory=lambda: ["*"])
    queue: Queue | None = None


ScopeTable = dict[str, Limits]


class Scopes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: ScopeTable = Field(default_factory=dict)
    team: ScopeTable = Field(default_factory=dict)
    key: ScopeTable = Field(default_factory=dict)
    ip: ScopeTable = Field(default_factory=dict)


class LimitsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[str, Tier] = Field(default_factory=dict)
    default_tier: str | None = None
    scopes: Scopes = Field(default_factory=Scopes)

    @model_validator(mode="after")
    def _default_tier_exists(self) -> LimitsFile:
        if self.default_tier is not None and self.default_tier not in self.tiers:
            known = ", ".join(sorted(self.tiers)) or "none defined"
            raise ValueError(f"default_tier {self.default_tier!r} is not a tier (tiers: {known})")
        return self


def tier_disagreements(limits: LimitsFile, access: object) -> list[str]:
    """Where ``rate_limits.yaml``'s tiers and the policy's ``data.access.tiers`` differ.

    The policy decides which models a caller may use; the tiers file lists them
    too (the specification's format has the list), and the two must not
    disagree unnoticed. An empty list means they agree.
    """
    policy_tiers = access.get("tiers") if isinstance(access, dict) else None
    if not isinstance(policy_tiers, dict):
        return ["the policy's data has no access.tiers to compare the tiers with"]
    problems = []
    for name in sorted(set(limits.tiers) - set(policy_tiers)):
        problems.append(f"tier {name!r} is in rate_limits.yaml but not in data.access.tiers")
    for name in sorted(set(policy_tiers) - set(limits.tiers)):
        problems.append(f"tier {name!r} is in data.access.tiers but not in rate_limits.yaml")
    for name in sorted(set(limits.tiers) & set(policy_tiers)):
        entry = policy_tiers[name]
        theirs = entry.get("models", []) if isinstance(entry, dict) else []
        ours, policy = set(limits.tiers[name].models), {str(m) for m in theirs}
        for model in sorted(ours - policy):
            problems.append(f"tier {name!r}: {model!r} is in rate_limits.yaml only")
        for model in sorted(policy - ours):
            problems.append(f"tier {name!r}: {model!r} is in data.access.tiers only")
    return problems
