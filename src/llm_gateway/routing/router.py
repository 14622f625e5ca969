"""The order in which one request tries its candidates, and which of them may be tried now.

:class:`Resolution` says which deployments may serve a name, in their
configured order; the router turns that into this request's order:

- a model or a chain keeps its configured order;
- ``auto`` asks the experiments, then the capability rules
  (:mod:`llm_gateway.routing.rules`), then the default strategy;
- a conversation (``X-Conversation-Id``) goes first to the model that served
  it first, while that model can be used (sticky sessions, in the state store
  with a TTL, per tenant);
- a model with endpoints per region stands for them, nearest to the caller
  first (:mod:`llm_gateway.routing.regions`).

Whether a candidate may be tried *now* (:meth:`Router.unusable`) is asked at
attempt time, in order: switched off, marked down by its health checks, its
circuit open, or at its ``max_concurrent``. The reason the last candidate was
passed over becomes the 503's code when nothing could be tried.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from llm_gateway.config import Deployment
from llm_gateway.routing.regions import Regions
from llm_gateway.routing.resolver import Resolution
from llm_gateway.routing.rules import Arm, Facts, Rules
from llm_gateway.routing.tracker import Tracker
from llm_gateway.state import Store, StoreError

log = logging.getLogger(__name__)

Unusable = Literal["disabled", "down", "open", "busy"]


class Strategy(Protocol):
    def order(self, names: Sequence[str]) -> list[str]:
        """``names`` best first; a name left out is not tried."""
        ...


class Breaker(Protocol):
    async def admit(self, name: str) -> bool: ...


class Health(Protocol):
    def is_up(self, name: str) -> bool: ...


class InOrder:
    """The configured order, unchanged."""

    def order(self, names: Sequence[str]) -> list[str]:
        return list(names)


@dataclass(slots=True)
class Plan:
    """This request's candidates in the order they are tried, and how the first was chosen."""

    order: list[Deployment]
    chosen_by: str  # "requested", "chain", "sticky", "rule", "experiment", or a strategy's name
    arm: Arm | None = None
    sticky_key: str | None = None  # where to remember the model that serves the conversation

    @property
    def route(self) -> str:
        """What the audit row's ``route`` says."""
        return f"experiment:{self.arm.label}" if self.arm is not None else self.chosen_by


class Router:
    def __init__(  # noqa: PLR0913 (keyword-only: the parts routing consults)
        self,
        *,
        strategy: Strategy | None = None,
        strategy_name: str = "in_order",
        rules: Rules | None = None,
        tracker: Tracker | None = None,
        breaker: Breaker | None = None,
        health: Health | None = None,
        store: Store | None = None,
        sticky_ttl_s: float = 3600,
        regions: Regions | None = None,
        strategies: Mapping[str, Strategy] | None = None,
    ) -> None:
        self.strategy = strategy or InOrder()
        self.strategy_name = strategy_name
        self.rules = rules or Rules()
        self.tracker = tracker or Tracker()
        self.breaker = breaker
        self.health = health
        self.store = store
        self.sticky_ttl_s = sticky_ttl_s
        self.regions = regions
        # A caller's policy may let them name another strategy (``x-gateway-strategy``).
        self.strategies = dict(strategies or {})

    async def plan(
        self, resolution: Resolution, facts: Facts | None, *, tenant: str | None,
        conversation_id: str | None, region: str | None = None, strategy: str | None = None,
    ) -> Plan:  # fmt: skip
        candidates = list(resolution.candidates)
        if resolution.kind == "auto" and facts is not None:
            plan = self._auto(candidates, facts, strategy)
        else:
            plan = Plan(candidates, "requested" if resolution.kind == "model" else "chain")
        if conversation_id and self.store is not None and len(candidates) > 1:
            await self._stick(plan, resolution.requested, tenant, conversation_id)
        if self.regions:
            plan.order = self.regions.expand(plan.order, region)
        return plan

    def _auto(self, candidates: list[Deployment], facts: Facts, asked: str | None) -> Plan:
        name, chosen = self.strategy_name, self.strategy
        if asked is not None and asked in self.strategies:
            name, chosen = asked, self.strategies[asked]
        by_name = {d.name: d for d in candidates}
        ordered = [by_name[n] for n in chosen.order(list(by_name))]
        if not ordered and name == "least_connections":
            # Every model is full: the Route stage waits for a slot, then says 503
            # all_models_busy (a strategy's "left out" means "not now" here, while for
            # cost_optimized it means "never": below the quality tier).
            ordered = candidates
        plan = Plan(ordered, name)
        if not self.rules:
            return plan
        arm = self.rules.arm(facts)
        target = arm.model if arm is not None else self.rules.target(facts)
        first = by_name.get(target) if target is not None else None
        if first is not None:  # else not allowed to this caller: the strategy decides
            plan.order = [first, *(d for d in ordered if d is not first)]
            plan.chosen_by, plan.arm = ("experiment", arm) if arm is not None else ("rule", None)
        return plan

    async def _stick(
        self, plan: Plan, requested: str, tenant: str | None, conversation_id: str
    ) -> None:
        digest = hashlib.blake2b(conversation_id.encode(), digest_size=12).hexdigest()
        plan.sticky_key = f"sticky:{tenant or '-'}:{requested}:{digest}"
        try:
            served = await self.store.get(plan.sticky_key)  # type: ignore[union-attr]
        except StoreError:
            return  # a conversation that moves model is better than a request refused
        if served is None:
            return
        name = served.decode()
        for i, d in enumerate(plan.order):
            if d.name == name:
                if i:
                    plan.order.insert(0, plan.order.pop(i))
                plan.chosen_by, plan.arm = "sticky", None
                return

    async def remember(self, plan: Plan, deployment: Deployment) -> None:
        """The first model to serve a conversation keeps it (the first writer wins)."""
        if plan.sticky_key is None or self.store is None:
            return
        try:
            await self.store.set_if_absent(
                plan.sticky_key, deployment.name.encode(), ttl_s=self.sticky_ttl_s
            )
        except StoreError:
            log.warning("sticky session not stored: the state store failed")

    async def unusable(self, deployment: Deployment) -> Unusable | None:
        """Why ``deployment`` cannot be tried now, or None if it can."""
        if not deployment.enabled:
            return "disabled"
        name = deployment.key  # one per endpoint
        if self.health is not None and not self.health.is_up(name):
            return "down"
        if self.tracker.in_flight(name) >= deployment.max_concurrent:
            return "busy"
        if self.breaker is not None and not await self.breaker.admit(name):
            return "open"
        return None
