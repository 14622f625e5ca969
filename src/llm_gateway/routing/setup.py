"""The routing parts built once, at start-up, from the routing file and the settings.

What each part reads: the strategy the models' weights, limits, prices and
quality tiers; the breaker the ``circuit_breaker`` section; the health
checker each model's ``health_check`` (every endpoint of a model with
endpoints per region is checked on its own). The probe is handed in, so
that routing knows nothing of providers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from llm_gateway.config import Deployment
from llm_gateway.config.routing import Routing
from llm_gateway.routing.breaker import Breaker, BreakerRules, Transition
from llm_gateway.routing.health import Check, HealthChecker
from llm_gateway.routing.load import Load
from llm_gateway.routing.regions import Regions
from llm_gateway.routing.router import Router
from llm_gateway.routing.rules import Rules
from llm_gateway.routing.strategies import STRATEGY_NAMES, Members, strategy
from llm_gateway.routing.tracker import Tracker
from llm_gateway.settings import RoutingSettings
from llm_gateway.state import Store

log = logging.getLogger(__name__)

Probe = Callable[[Deployment], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Parts:
    router: Router
    breaker: Breaker | None
    health: HealthChecker | None


def build_router(
    *,
    routing: Routing,
    deployments: Mapping[str, Deployment],
    regional: Mapping[str, Mapping[str, Deployment]],
    settings: RoutingSettings,
    store: Store,
    probe: Probe,
    on_breaker: Callable[[Transition], None] | None = None,
) -> Parts:
    """The router, and the breaker and health checker it reads (the checker is started
    and stopped with the app; the health endpoint reads both). ``on_breaker`` hears each
    circuit's transitions (the alerts' listener)."""
    load = Load()
    members = Members(
        weights={n: d.weight for n, d in deployments.items()},
        max_concurrent={n: d.max_concurrent for n, d in deployments.items()},
        prices={
            n: (d.price.input_per_million, d.price.output_per_million)
            for n, d in deployments.items()
            if d.price is not None
        },
        quality={n: e.quality_tier for n, e in routing.models.items()},
    )
    min_quality = routing.cost_optimized.min_quality_tier
    breaker = None
    if routing.circuit_breaker.enabled:
        section = routing.circuit_breaker
        rules = BreakerRules(
            failure_rate_threshold=section.failure_rate_threshold,
            wait_duration_s=section.wait_duration_seconds,
            permitted_calls_in_half_open=section.permitted_calls_in_half_open,
        )
        breaker = Breaker(store, rules, on_transition=on_breaker)
    health = health_checker(routing, deployments, regional, probe)
    strategies = {
        name: strategy(name, members, load, min_quality=min_quality) for name in STRATEGY_NAMES
    }
    router = Router(
        strategy=strategies[routing.default_strategy],
        strategy_name=routing.default_strategy,
        strategies=strategies,
        rules=Rules(routing.capability_routing, routing.experiments),
        tracker=Tracker(load, breaker),
        breaker=breaker,
        health=health,
        store=store.namespaced("sticky"),
        sticky_ttl_s=settings.sticky_ttl_s,
        regions=Regions(routing.regions, regional),
    )
    return Parts(router, breaker, health)


def health_checker(
    routing: Routing,
    deployments: Mapping[str, Deployment],
    regional: Mapping[str, Mapping[str, Deployment]],
    probe: Probe,
) -> HealthChecker | None:
    """The checker of every endpoint whose model has health checks on; None if none has."""
    endpoints: dict[str, Deployment] = {}
    checks: dict[str, Check] = {}
    for name, entry in routing.models.items():
        deployment = deployments.get(name)
        if deployment is None or not deployment.enabled or not entry.health_check.enabled:
            continue
        check = Check(
            interval_s=entry.health_check.interval_seconds,
            failure_threshold=entry.health_check.failure_threshold,
            timeout_s=min(deployment.timeout_s, entry.health_check.interval_seconds),
        )
        for endpoint in (deployment, *regional.get(name, {}).values()):
            endpoints[endpoint.key] = endpoint
            checks[endpoint.key] = check
    if not checks:
        return None

    async def probe_endpoint(key: str) -> None:
        await probe(endpoints[key])

    return HealthChecker(checks, probe_endpoint)
