"""Routing: which deployments serve a requested name, and in which order this request tries them.

:mod:`.resolver` maps a name (a model, a fallback chain, ``auto``) to its
candidates once, at start-up; :mod:`.router` orders them per request
(:mod:`.rules` for ``auto``'s experiments and capability rules, sticky
sessions) and says which may be tried now; :mod:`.tracker` counts each
attempt's start and end for the strategies and the circuit breaker.
"""

from llm_gateway.routing.cache import StaleCache
from llm_gateway.routing.regions import REGION_HEADER, Regions
from llm_gateway.routing.resolver import Kind, Resolution, Resolver, model_not_found, unknown_model
from llm_gateway.routing.router import InOrder, Plan, Router, Unusable
from llm_gateway.routing.rules import Arm, Facts, Rules
from llm_gateway.routing.tracker import Slot, Tracker

__all__ = [
    "REGION_HEADER", "Arm", "Facts", "InOrder", "Kind", "Plan", "Regions", "Resolution",
    "Resolver", "Router", "Rules", "Slot", "StaleCache", "Tracker", "Unusable",
    "model_not_found", "unknown_model",
]  # fmt: skip
