"""``config/routing_policies.yaml``: the models the gateway serves and how to route to them.

The file uses the product specification's format unchanged; the fields we add
are optional: per model ``provider``, ``upstream_model``, ``api_key``,
``default_max_tokens``, ``fallbacks`` (the models tried, in order, when a
request naming this model cannot be served by it) and ``quality_tier`` (what
``cost_optimized`` compares against ``cost_optimized.min_quality_tier``),
``endpoints`` (the model's endpoint per region, for geographic routing; the
regions are a section of their own, ``regions``: each with the client
networks in it and the regions nearest to it, in order).
Every name a section uses must exist, so a typo is caught on the day it is
written; the checks that span sections are in :meth:`Routing.problems`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator

from llm_gateway.config.loader import Loc


class Provider(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OLLAMA = "ollama"
    OPENAI_COMPATIBLE = "openai_compatible"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthCheck(_Strict):
    enabled: bool = False
    interval_seconds: Annotated[float, Field(gt=0)] = 30
    failure_threshold: Annotated[int, Field(ge=1)] = 3


class ModelEntry(_Strict):
    endpoint: str
    provider: Provider | None = None
    upstream_model: str | None = None  # the provider's model id; defaults to the entry's name
    api_key: str | None = None  # defaults to CLAUDE_API_KEY / OPENAI_API_KEY by provider
    weight: Annotated[int, Field(ge=0)] = 1
    timeout_ms: Annotated[int, Field(gt=0)] = 60_000
    max_concurrent: Annotated[int, Field(ge=1)] = 100
    default_max_tokens: Annotated[int, Field(ge=1)] = 4096  # Anthropic requires max_tokens
    health_check: HealthCheck = HealthCheck()
    fallbacks: list[str] = []  # tried in order when this model cannot answer
    endpoints: dict[str, str] = {}  # region -> this model's endpoint there
    quality_tier: Annotated[int, Field(ge=1)] = 1  # higher is better; see CostOptimized

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value == "":
            return value  # an unset ${VAR}: the model is disabled, not invalid
        return _http_url(value)

    @field_validator("endpoints")
    @classmethod
    def _http_urls(cls, value: dict[str, str]) -> dict[str, str]:
        return {region: _http_url(url) for region, url in value.items()}

    def resolved_provider(self) -> Provider:
        """The declared provider, else one inferred from the endpoint."""
        if self.provider is not None:
            return self.provider
        parts = urlsplit(self.endpoint)
        host = parts.hostname or ""
        if host == "anthropic.com" or host.endswith(".anthropic.com"):
            return Provider.ANTHROPIC
        if host == "openai.com" or host.endswith(".openai.com"):
            return Provider.OPENAI
        if (parts.port == 11434 or "ollama" in host) and not parts.path.endswith("/v1"):
            return Provider.OLLAMA
        return Provider.OPENAI_COMPATIBLE


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


class Region(_Strict):
    """Callers in ``networks`` are in this region; ``nearest`` are the next regions to try."""

    networks: list[IPvAnyNetwork] = []
    nearest: list[str] = []


class CircuitBreaker(_Strict):
    enabled: bool = False
    failure_rate_threshold: Annotated[float, Field(gt=0, le=100)] = 50
    wait_duration_seconds: Annotated[float, Field(gt=0)] = 60
    permitted_calls_in_half_open: Annotated[int, Field(ge=1)] = 3


class Match(_Strict):
    prompt_contains: list[str] = []
    token_estimate_gt: Annotated[int, Field(ge=0)] | None = None
    user_tier: str | None = None


class CapabilityRule(_Strict):
    match: Match
    route_to: str


class CapabilityRouting(_Strict):
    enabled: bool = False
    rules: list[CapabilityRule] = []


class Experiment(_Strict):
    name: str
    enabled: bool = True
    traffic_split: dict[str, Annotated[int, Field(ge=0)]]
    match: Match = Match()


class StaleIfError(_Strict):
    """The last good answer to the same request, served only when every model fails."""

    enabled: bool = False
    ttl_seconds: Annotated[float, Field(gt=0)] = 86_400
    max_entries_per_tenant: Annotated[int, Field(ge=1)] = 1000
    max_entry_bytes: Annotated[int, Field(ge=1)] = 65_536


class CostOptimized(_Strict):
    """``cost_optimized`` picks the cheapest model whose ``quality_tier`` is at least this."""

    min_quality_tier: Annotated[int, Field(ge=1)] = 1


#: The name that asks the gateway to choose the model (capability rules, experiments,
#: ``default_strategy``); no model or chain may take it.
AUTO = "auto"

Strategy = Literal[
    "round_robin", "weighted", "least_latency", "least_connections", "cost_optimized"
]


class Routing(_Strict):
    default_strategy: Strategy = "weighted"
    models: dict[str, ModelEntry]
    fallback_chains: dict[str, list[str]] = {}
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    capability_routing: CapabilityRouting = CapabilityRouting()
    experiments: list[Experiment] = []
    cost_optimized: CostOptimized = CostOptimized()
    stale_if_error: StaleIfError = StaleIfError()
    regions: dict[str, Region] = {}

    def model_references(self) -> list[tuple[Loc, str]]:
        """Every place that names a model, with its location in the file."""
        refs: list[tuple[Loc, str]] = []
        for model, entry in self.models.items():
            refs += [
                (("routing", "models", model, "fallbacks", i), n)
                for i, n in enumerate(entry.fallbacks)
            ]
        for chain, names in self.fallback_chains.items():
            refs += [(("routing", "fallback_chains", chain, i), n) for i, n in enumerate(names)]
        for i, rule in enumerate(self.capability_routing.rules):
            refs.append((("routing", "capability_routing", "rules", i, "route_to"), rule.route_to))
        for i, exp in enumerate(self.experiments):
            refs += [
                (("routing", "experiments", i, "traffic_split", n), n) for n in exp.traffic_split
            ]
        return refs

    def problems(self) -> list[tuple[Loc, str]]:
        """What is wrong across sections, each with where it is written."""
        found: list[tuple[Loc, str]] = []
        reserved = f"{AUTO!r} is reserved: it asks the gateway to choose the model"
        if AUTO in self.models:
            found.append((("routing", "models", AUTO), reserved))
        if AUTO in self.fallback_chains:
            found.append((("routing", "fallback_chains", AUTO), reserved))
        for chain, names in self.fallback_chains.items():
            loc: Loc = ("routing", "fallback_chains", chain)
            if chain in self.models:
                found.append((loc, f"a chain cannot take the name of the model {chain!r}"))
            if not names:
                found.append((loc, "a chain needs at least one model"))
            if len(set(names)) != len(names):
                found.append((loc, "a chain names a model twice"))
        for model, entry in self.models.items():
            if model in entry.fallbacks:
                loc = ("routing", "models", model, "fallbacks")
                found.append((loc, "a model cannot be its own fallback"))
        found += self._region_problems()
        if self.default_strategy == "weighted" and not any(m.weight for m in self.models.values()):
            found.append((("routing", "models"), "the weights sum to zero"))
        for i, exp in enumerate(self.experiments):
            total = sum(exp.traffic_split.values())
            if total != 100:
                loc = ("routing", "experiments", i, "traffic_split")
                found.append((loc, f"the split sums to {total}, not 100"))
        return found

    def _region_problems(self) -> list[tuple[Loc, str]]:
        found: list[tuple[Loc, str]] = []
        known = ", ".join(sorted(self.regions)) or "none is defined under routing.regions"
        served = {r for entry in self.models.values() for r in entry.endpoints}
        for model, entry in self.models.items():
            found += [
                (("routing", "models", model, "endpoints", r), f"unknown region (known: {known})")
                for r in entry.endpoints
                if r not in self.regions
            ]
        for name, region in self.regions.items():
            if name not in served:
                found.append((("routing", "regions", name), "no model has an endpoint there"))
            found += [
                (("routing", "regions", name, "nearest", i), f"unknown region {r!r}")
                for i, r in enumerate(region.nearest)
                if r not in self.regions or r == name
            ]
        return found


class RoutingFile(_Strict):
    routing: Routing
