"""``config/routing_policies.yaml``: the models the gateway serves and how to route to them.

The file uses the product specification's format unchanged; the fields we add
(``provider``, ``upstream_model``, ``api_key``, ``default_max_tokens``) are
optional. Sections the routing stage acts on later (fallback chains, circuit
breaker, capability rules, experiments) are validated now, including that
every model they name exists, so a typo is caught on the day it is written.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value == "":
            return value  # an unset ${VAR}: the model is disabled, not invalid
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

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


class Routing(_Strict):
    default_strategy: Literal[
        "round_robin", "weighted", "least_latency", "least_connections", "cost_optimized"
    ] = "weighted"
    models: dict[str, ModelEntry]
    fallback_chains: dict[str, list[str]] = {}
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    capability_routing: CapabilityRouting = CapabilityRouting()
    experiments: list[Experiment] = []

    def model_references(self) -> list[tuple[Loc, str]]:
        """Every place that names a model, with its location in the file."""
        refs: list[tuple[Loc, str]] = []
        for chain, names in self.fallback_chains.items():
            refs += [(("routing", "fallback_chains", chain, i), n) for i, n in enumerate(names)]
        for i, rule in enumerate(self.capability_routing.rules):
            refs.append((("routing", "capability_routing", "rules", i, "route_to"), rule.route_to))
        for i, exp in enumerate(self.experiments):
            refs += [
                (("routing", "experiments", i, "traffic_split", n), n) for n in exp.traffic_split
            ]
        return refs


class RoutingFile(_Strict):
    routing: Routing
