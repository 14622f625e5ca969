"""The gateway's configuration files: loaded, validated and resolved once, at start-up.

``load_gateway_config`` is what both the server and ``llm-gateway check-config``
call, so the two can never disagree about what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from llm_gateway.config.alerts import load_alerts
from llm_gateway.config.guardrails import GuardrailsFile
from llm_gateway.config.identity import IdentityFile
from llm_gateway.config.limits import LimitsFile
from llm_gateway.config.loader import ConfigError, LoadedYaml, load_yaml, validate
from llm_gateway.config.pricing import Price, PricingFile
from llm_gateway.config.routing import AUTO, ModelEntry, Provider, RoutingFile
from llm_gateway.observability.alerts.settings import AlertSettings
from llm_gateway.settings import ProviderSettings

__all__ = [
    "ConfigError",
    "Deployment",
    "GatewayConfig",
    "IdentityFile",
    "LimitsFile",
    "Provider",
    "load_gateway_config",
]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One model the gateway can serve, resolved against the settings."""

    name: str
    provider: Provider
    base_url: str
    upstream_model: str
    api_key: str | None
    timeout_s: float
    max_concurrent: int
    weight: int
    default_max_tokens: int
    price: Price | None
    disabled_reason: str | None = None  # set when a needed setting is missing
    demo: bool = False
    region: str | None = None  # one of the model's regional endpoints (``endpoints``)

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    @property
    def key(self) -> str:
        """What health, breakers and load are kept under: one per endpoint."""
        return self.name if self.region is None else f"{self.name}@{self.region}"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    routing: RoutingFile
    pricing: PricingFile
    limits: LimitsFile
    deployments: dict[str, Deployment]
    files: tuple[Path, ...]
    guardrails: GuardrailsFile = field(default_factory=GuardrailsFile)
    # A model's deployment per region, for the models with ``endpoints``.
    regional: dict[str, dict[str, Deployment]] = field(default_factory=dict)
    identity: IdentityFile = field(default_factory=IdentityFile)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def enabled(self) -> list[Deployment]:
        return [d for d in self.deployments.values() if d.enabled]


def load_gateway_config(settings: ProviderSettings) -> GatewayConfig:
    """Load every config file under ``settings.config_dir``; raise ConfigError on any problem."""
    routing_path = settings.config_dir / "routing_policies.yaml"
    pricing_path = settings.config_dir / "pricing.yaml"
    routing_yaml = load_yaml(routing_path)
    routing = validate(RoutingFile, routing_yaml)
    _check_references(routing, routing_yaml)
    pricing = (
        validate(PricingFile, load_yaml(pricing_path)) if pricing_path.exists() else PricingFile()
    )
    deployments = {
        name: _deployment(name, entry, routing_yaml, settings, pricing)
        for name, entry in routing.routing.models.items()
    }
    limits_path = settings.config_dir / "rate_limits.yaml"
    limits = LimitsFile()
    if limits_path.exists():
        limits_yaml = load_yaml(limits_path)
        limits = validate(LimitsFile, limits_yaml)
        _check_tier_models(limits, limits_yaml, served_names(routing))
    guardrails_path = settings.config_dir / "guardrails.yaml"
    guardrails = GuardrailsFile()
    if guardrails_path.exists():
        guardrails = validate(GuardrailsFile, load_yaml(guardrails_path))
    identity_path = settings.config_dir / "identity.yaml"
    identity = IdentityFile()
    if identity_path.exists():
        identity = validate(IdentityFile, load_yaml(identity_path))
    alerts_path = settings.config_dir / "alerts.yaml"
    alerts = load_alerts(alerts_path)
    files = (routing_path, pricing_path, limits_path, guardrails_path, identity_path, alerts_path)
    regional = {
        name: {r: replace(deployments[name], base_url=url, region=r) for r, url in endpoints}
        for name, entry in routing.routing.models.items()
        if (endpoints := entry.endpoints.items())
    }
    return GatewayConfig(
        routing, pricing, limits, deployments, files, guardrails=guardrails, regional=regional,
        identity=identity, alerts=alerts,
    )  # fmt: skip


#: The built-in emulator's model, served when no provider is configured: a tier may name it.
DEMO_MODEL = "demo"


def served_names(routing: RoutingFile) -> set[str]:
    """Every name a request may ask for: the models, the fallback chains, ``auto`` and the
    demo model."""
    return {*routing.routing.models, *routing.routing.fallback_chains, AUTO, DEMO_MODEL}


def _check_tier_models(limits: LimitsFile, loaded: LoadedYaml, served: set[str]) -> None:
    problems = [
        f"{loaded.where(('tiers', tier, 'models', i))}: tiers.{tier}.models[{i}]: "
        f'no route serves {name!r} (expected "*" or one of: {", ".join(sorted(served))})'
        for tier, entry in limits.tiers.items()
        for i, name in enumerate(entry.models)
        if name != "*" and name not in served
    ]
    if problems:
        raise ConfigError(loaded.path, problems)


def _check_references(routing: RoutingFile, loaded: LoadedYaml) -> None:
    known = routing.routing.models
    problems = [
        f"{loaded.where(loc)}: {'.'.join(map(str, loc))}: unknown model {name!r} "
        f"(expected one of: {', '.join(sorted(known))})"
        for loc, name in routing.routing.model_references()
        if name not in known
    ]
    problems += [
        f"{loaded.where(loc)}: {'.'.join(map(str, loc))}: {problem}"
        for loc, problem in routing.routing.problems()
    ]
    if problems:
        raise ConfigError(loaded.path, problems)


_KEY_SETTING = {
    Provider.ANTHROPIC: ("claude_api_key", "CLAUDE_API_KEY"),
    Provider.OPENAI: ("openai_api_key", "OPENAI_API_KEY"),
}


def _deployment(
    name: str,
    entry: ModelEntry,
    loaded: LoadedYaml,
    settings: ProviderSettings,
    pricing: PricingFile,
) -> Deployment:
    provider = entry.resolved_provider()
    loc = ("routing", "models", name)
    unset = sorted({v for path, names in loaded.unset.items() if path[:3] == loc for v in names})
    api_key = entry.api_key
    if api_key is None and provider in _KEY_SETTING:
        attr, variable = _KEY_SETTING[provider]
        api_key = getattr(settings, attr)
        if not api_key:
            unset.append(variable)
    reason = f"{', '.join(unset)} not set" if unset else None
    upstream_model = entry.upstream_model or name
    return Deployment(
        name=name,
        provider=provider,
        base_url=entry.endpoint,
        upstream_model=upstream_model,
        api_key=api_key or None,
        timeout_s=entry.timeout_ms / 1000,
        max_concurrent=entry.max_concurrent,
        weight=entry.weight,
        default_max_tokens=entry.default_max_tokens,
        price=pricing.price_for(name, upstream_model),
        disabled_reason=reason,
    )
