"""Strategies: in which order to try a pool's models, best first.

A :class:`Strategy` is handed the names still in play for one request (the
caller has already removed what the policy denies, what is down and what has
an open circuit) and returns them best first; the ``Route`` stage tries the
first and falls back along the rest, in order. A strategy may also leave a
name out when it must not be tried at all: :class:`LeastConnections` drops a
model at its ``max_concurrent``, :class:`CostOptimized` one below the quality
tier. An empty answer means nothing may serve the request now; the caller
decides between waiting and ``503``.

The members' static data (weights, limits, prices, quality) is given at
construction; dynamic data comes from :class:`~llm_gateway.routing.load.Load`.
A stateful strategy (:class:`RoundRobin`, :class:`Weighted`,
:class:`LeastConnections`'s tie rotation) keeps its turn in the instance: use
one instance per pool, so each pool's proportions hold on their own.

Every strategy is per process. Over N replicas each one keeps its own
rotation, so the split holds over all of them as it holds in each.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llm_gateway.routing.load import Load

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_EXPLORE_AFTER_S",
    "DEFAULT_OUTPUT_PER_INPUT",
    "STRATEGY_NAMES",
    "CostOptimized",
    "LeastConnections",
    "LeastLatency",
    "Members",
    "RoundRobin",
    "Strategy",
    "Weighted",
    "strategy",
]

DEFAULT_WEIGHT = 1  # the routing file's default for a model that states none
DEFAULT_EPSILON = 0.05
"""How often :class:`LeastLatency` puts a random other model first: one request in twenty,
enough to notice a recovered model within seconds under load, cheap enough to cost
the average latency little."""
DEFAULT_EXPLORE_AFTER_S = 30.0
"""A model not tried for this long is tried next, whatever its average says: its average
is old news (and, under little traffic, epsilon alone might not come round to it)."""
DEFAULT_OUTPUT_PER_INPUT = 0.25
"""The output tokens :class:`CostOptimized` assumes per input token when it ranks prices.
Chat prompts carry the history and a system prompt, answers are shorter: a quarter is
typical. Only the ranking depends on it, and only between a model cheaper for input
and another cheaper for output."""


class Strategy(Protocol):
    """Orders a pool's candidate names for one request."""

    def order(self, names: Sequence[str]) -> list[str]:
        """``names`` best first; the rest are fallbacks in that order. May leave names out."""
        ...


@dataclass(frozen=True, slots=True)
class Members:
    """The pool members' static data, by model name; a name missing from a mapping gets the
    documented default of the strategy that reads it."""

    weights: Mapping[str, int] = field(default_factory=dict)
    max_concurrent: Mapping[str, int] = field(default_factory=dict)
    #: (input, output) price per million tokens
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    quality: Mapping[str, int] = field(default_factory=dict)


class RoundRobin:
    """Each call starts one member further along the given names, then wraps around."""

    def __init__(self) -> None:
        self._turn = 0

    def order(self, names: Sequence[str]) -> list[str]:
        if not names:
            return []
        start = self._turn % len(names)
        self._turn += 1
        return [*names[start:], *names[:start]]


class Weighted:
    """Smooth weighted round robin, as nginx does it: deterministic, and evenly spread.

    Each call, every weighted member's current value grows by its weight; the
    member with the highest (the first of equals, in the given order) is
    picked and loses the total weight. Over a cycle of ``sum(weights)`` calls
    on the same names, each member is picked exactly ``weight`` times, never
    in long runs (weights 5, 1, 1 give a a b a c a a). The rest follow by
    weight, heaviest first, as fallbacks.

    A member of weight 0 is never picked first while a weighted member is in
    play, but stays a fallback, last: weight 0 means "no share of the
    traffic", not "never use". A name missing from ``weights`` has weight 1,
    the routing file's default.
    """

    def __init__(self, weights: Mapping[str, int]) -> None:
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must not be negative")
        self.weights = dict(weights)
        self._current: dict[str, int] = {}

    def _weight(self, name: str) -> int:
        return self.weights.get(name, DEFAULT_WEIGHT)

    def order(self, names: Sequence[str]) -> list[str]:
        weighted = [name for name in names if self._weight(name) > 0]
        unweighted = [name for name in names if self._weight(name) <= 0]
        if not weighted:
            return unweighted
        current = self._current
        for name in weighted:
            current[name] = current.get(name, 0) + self._weight(name)
        best = max(weighted, key=current.__getitem__)  # the first of equals
        current[best] -= sum(self._weight(name) for name in weighted)
        rest = sorted((n for n in weighted if n != best), key=self._weight, reverse=True)
        return [best, *rest, *unweighted]


class LeastLatency:
    """The lowest latency average first, with exploration so that no model is written off.

    The first place goes, in this order of precedence, to:

    1. a member never tried (in the given order): it has no average yet;
    2. the member tried longest ago, if that was ``explore_after_s`` or more
       ago: a model that was slow or failing is tried again, so one that has
       recovered wins its traffic back;
    3. with probability ``epsilon`` (drawn from ``rng``), a random other member;
    4. otherwise the lowest average.

    The rest follow by average, lowest first; members tried but never
    successful (no average) come after the measured ones. Only the first place
    explores, so a request never has more than one unproven model ahead of the
    fast one. Fallback attempts count as tries too. Under traffic sparser than
    one request per member per ``explore_after_s`` the rule alternates the
    members, which is the price of never trusting an old average.
    """

    def __init__(
        self,
        load: Load,
        *,
        epsilon: float = DEFAULT_EPSILON,
        explore_after_s: float = DEFAULT_EXPLORE_AFTER_S,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.load = load
        self.epsilon = epsilon
        self.explore_after_s = explore_after_s
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 (not security)

    def _average(self, name: str) -> tuple[bool, float]:
        ewma = self.load.ewma_ms(name)
        return (ewma is None, ewma or 0.0)

    def order(self, names: Sequence[str]) -> list[str]:
        ranked = sorted(names, key=self._average)
        explorer = self._explorer(names, ranked)
        if explorer is None:
            return ranked
        return [explorer, *(name for name in ranked if name != explorer)]

    def _explorer(self, names: Sequence[str], ranked: Sequence[str]) -> str | None:
        """The member to try first instead of the fastest, if any."""
        tried: list[tuple[float, str]] = []
        for name in names:
            last = self.load.last_tried(name)
            if last is None:
                return name
            tried.append((last, name))
        if len(ranked) < 2:
            return None
        oldest, name = min(tried)
        if self.load.clock() - oldest >= self.explore_after_s:
            return name
        if self.epsilon and self.rng.random() < self.epsilon:
            return ranked[self.rng.randrange(1, len(ranked))]
        return None


class LeastConnections:
    """The fewest calls in flight (in this process) first; a member at its limit is left out.

    ``max_concurrent`` gives each member's limit (a name missing from it has
    none). A member with ``max_concurrent`` calls in flight is not returned at
    all, so an empty answer means every member is full (``all_models_busy``).
    Equal counts are broken by rotation, so a lightly loaded pool (everyone at
    zero) still spreads its calls instead of sending all of them to the first.

    Start the chosen attempt with :meth:`Load.try_start` and the same limit:
    the limit then holds even when an attempt begins after an ``await``.
    """

    def __init__(self, load: Load, max_concurrent: Mapping[str, int]) -> None:
        self.load = load
        self.max_concurrent = dict(max_concurrent)
        self._turn = 0

    def has_room(self, name: str) -> bool:
        limit = self.max_concurrent.get(name)
        return limit is None or self.load.in_flight(name) < limit

    def order(self, names: Sequence[str]) -> list[str]:
        free = [name for name in names if self.has_room(name)]
        if not free:
            return []
        start = self._turn % len(free)
        self._turn += 1
        rotated = [*free[start:], *free[:start]]
        return sorted(rotated, key=self.load.in_flight)  # stable: the rotation breaks ties


class CostOptimized:
    """The cheapest member that meets the quality tier first; members below it are left out.

    A member's price is ``input + output_per_input * output`` per million
    input tokens, from ``prices`` (input, output per million). ``quality``
    gives each member's tier (a missing name has 0); a member below
    ``min_quality`` is never returned. Equal prices go to the heavier weight
    (a missing weight is 1), then to the given order. A member without a price
    could cost anything: it comes after every priced one, heaviest first.
    """

    def __init__(
        self,
        prices: Mapping[str, tuple[float, float]],
        quality: Mapping[str, int],
        *,
        min_quality: int = 0,
        weights: Mapping[str, int] | None = None,
        output_per_input: float = DEFAULT_OUTPUT_PER_INPUT,
    ) -> None:
        if output_per_input < 0:
            raise ValueError("output_per_input must not be negative")
        self.quality = dict(quality)
        self.min_quality = min_quality
        self.weights = dict(weights or {})
        self.unit_price = {
            name: inp + output_per_input * out for name, (inp, out) in prices.items()
        }

    def _rank(self, name: str) -> tuple[bool, float, int]:
        price = self.unit_price.get(name)
        weight = self.weights.get(name, DEFAULT_WEIGHT)
        return (price is None, price or 0.0, -weight)

    def order(self, names: Sequence[str]) -> list[str]:
        eligible = [n for n in names if self.quality.get(n, 0) >= self.min_quality]
        return sorted(eligible, key=self._rank)


STRATEGY_NAMES = ("round_robin", "weighted", "least_latency", "least_connections", "cost_optimized")
"""The names ``default_strategy`` (and a caller's override) may use."""


def strategy(
    name: str,
    members: Members,
    load: Load,
    *,
    min_quality: int = 0,
    rng: random.Random | None = None,
) -> Strategy:
    """A new strategy for one pool, by its routing-file name; :class:`ValueError` if unknown.

    ``load`` is the process's one :class:`Load` (only the load-aware strategies
    read it); ``min_quality`` is the tier for ``cost_optimized``; ``rng`` the
    randomness for ``least_latency``'s exploration. The other knobs keep their
    documented defaults; build the class directly to change them.
    """
    match name:
        case "round_robin":
            return RoundRobin()
        case "weighted":
            return Weighted(members.weights)
        case "least_latency":
            return LeastLatency(load, rng=rng)
        case "least_connections":
            return LeastConnections(load, members.max_concurrent)
        case "cost_optimized":
            return CostOptimized(
                members.prices, members.quality, min_quality=min_quality, weights=members.weights
            )
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}")
