"""Each strategy's promised order and distribution, on a clock and randomness the tests own.

The distributions are checked by simulation: many requests, each trying the
strategy's first choice and reporting a latency to :class:`Load`, with the
clock moved by hand. Round robin and smooth weighted round robin are exact
over a cycle, so they are checked exactly; least latency's exploration is
random (seeded) and checked within a stated tolerance.
"""

from __future__ import annotations

import random
import typing
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from llm_gateway.config.routing import Routing
from llm_gateway.routing.load import Load
from llm_gateway.routing.strategies import (
    STRATEGY_NAMES,
    CostOptimized,
    LeastConnections,
    LeastLatency,
    Members,
    RoundRobin,
    Strategy,
    Weighted,
    strategy,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def firsts(chooser: Strategy, names: Sequence[str], calls: int) -> list[str]:
    return [chooser.order(names)[0] for _ in range(calls)]


def serve(
    chooser: Strategy,
    load: Load,
    clock: Clock,
    latency_ms: Mapping[str, float],
    *,
    calls: int,
    every_s: float,
) -> list[str]:
    """``calls`` requests, one every ``every_s``, each answered by the first choice."""
    served = []
    for _ in range(calls):
        first = chooser.order(list(latency_ms))[0]
        load.started(first)
        load.finished(first, latency_ms[first], ok=True)
        served.append(first)
        clock.now += every_s
    return served


# --- Load ----------------------------------------------------------------------


def test_load_averages_successes_and_lets_failures_only_slow_a_model() -> None:
    load = Load(alpha=0.3, clock=Clock())
    assert load.ewma_ms("m") is None
    load.finished("m", 50, ok=False)
    assert load.ewma_ms("m") is None  # a fast failure before any success: still unmeasured
    load.finished("m", 100, ok=True)
    assert load.ewma_ms("m") == 100  # the first success is the average
    load.finished("m", 200, ok=True)
    assert load.ewma_ms("m") == pytest.approx(0.3 * 200 + 0.7 * 100)
    load.finished("m", 2, ok=False)  # connection refused: no faster than before
    assert load.ewma_ms("m") == pytest.approx(130)
    load.finished("m", 1000, ok=False)  # a timeout counts at its full length
    assert load.ewma_ms("m") == pytest.approx(0.3 * 1000 + 0.7 * 130)


def test_load_counts_calls_in_flight_and_when_each_model_was_tried() -> None:
    clock = Clock()
    load = Load(clock=clock)
    assert (load.in_flight("m"), load.last_tried("m")) == (0, None)
    load.started("m")
    clock.now += 5
    load.started("m")
    assert (load.in_flight("m"), load.last_tried("m")) == (2, clock.now)
    load.finished("m", 10, ok=True)
    load.finished("m", 10, ok=True)
    load.finished("m", 10, ok=True)  # a stray finish
    assert load.in_flight("m") == 0


def test_try_start_never_passes_the_limit_and_cancelled_gives_the_slot_back() -> None:
    load = Load(clock=Clock())
    assert [load.try_start("m", 2) for _ in range(3)] == [True, True, False]
    assert load.in_flight("m") == 2
    load.cancelled("m")
    assert load.try_start("m", 2)
    assert load.try_start("m", None)
    assert load.in_flight("m") == 3
    assert load.ewma_ms("m") is None  # nothing was measured


@pytest.mark.parametrize("alpha", [0, -0.1, 1.5])
def test_load_refuses_an_alpha_outside_0_to_1(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        Load(alpha=alpha)


# --- round robin -------------------------------------------------------------------


def test_round_robin_starts_one_further_each_call() -> None:
    chooser = RoundRobin()
    orders = [chooser.order(["a", "b", "c"]) for _ in range(4)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert chooser.order([]) == []


def test_round_robin_shares_exactly_over_each_cycle() -> None:
    assert Counter(firsts(RoundRobin(), ["a", "b", "c"], 300)) == {"a": 100, "b": 100, "c": 100}


# --- weighted ----------------------------------------------------------------------


def test_weighted_is_smooth_as_nginx_spreads_it() -> None:
    chooser = Weighted({"a": 5, "b": 1, "c": 1})
    assert "".join(firsts(chooser, ["a", "b", "c"], 14)) == "aabacaa" * 2


def test_weighted_shares_exactly_over_each_cycle_and_stays_close_at_every_step() -> None:
    weights = {"claude": 50, "gpt": 30, "ollama": 20}  # the specification's example
    chosen = firsts(Weighted(weights), list(weights), 1000)
    assert Counter(chosen) == {"claude": 500, "gpt": 300, "ollama": 200}  # 10 cycles of 100
    seen: Counter[str] = Counter()
    for calls, name in enumerate(chosen, start=1):
        seen[name] += 1
        for member, weight in weights.items():  # never more than one call from its share
            assert abs(seen[member] - calls * weight / 100) <= 1


def test_weighted_over_a_subset_shares_among_those_present() -> None:
    chooser = Weighted({"a": 2, "b": 1, "c": 7})
    assert Counter(firsts(chooser, ["a", "b"], 300)) == {"a": 200, "b": 100}


def test_weighted_fallbacks_go_by_weight_and_zero_weight_comes_last() -> None:
    chooser = Weighted({"a": 1, "b": 5, "z": 0, "c": 3})
    assert chooser.order(["z", "a", "b", "c"]) == ["b", "c", "a", "z"]
    assert Counter(firsts(chooser, ["z", "a"], 10)) == {"a": 10}  # never first while a is there
    assert chooser.order(["z"]) == ["z"]  # but still a fallback when alone


def test_weighted_refuses_negative_weights() -> None:
    with pytest.raises(ValueError, match="negative"):
        Weighted({"a": -1})


# --- least latency -------------------------------------------------------------------


def test_least_latency_prefers_the_fast_one_and_still_probes_the_slow_one() -> None:
    clock = Clock()
    load = Load(clock=clock)
    chooser = LeastLatency(load, epsilon=0.05, rng=random.Random(7))
    latency_ms = {"slow": 400, "fast": 100}
    served = Counter(serve(chooser, load, clock, latency_ms, calls=2000, every_s=0.1))
    # epsilon = 5% of the first places go to the other model; binomial over 2000 calls,
    # so 2.5% to 10% leaves a wide margin (a seeded generator: the numbers are fixed)
    assert 50 <= served["slow"] <= 200
    assert served["fast"] >= 1800


def test_least_latency_tries_members_never_tried_first() -> None:
    clock = Clock()
    load = Load(clock=clock)
    load.started("known")
    load.finished("known", 10, ok=True)
    chooser = LeastLatency(load, epsilon=0)
    assert chooser.order(["known", "new", "newer"])[0] == "new"
    load.started("new")  # in flight, not yet measured
    assert chooser.order(["known", "new", "newer"]) == ["newer", "known", "new"]
    load.started("newer")
    assert chooser.order(["known", "new", "newer"]) == ["known", "new", "newer"]


def test_least_latency_retries_a_member_idle_for_explore_after_s() -> None:
    clock = Clock()
    load = Load(clock=clock)
    chooser = LeastLatency(load, epsilon=0, explore_after_s=30)
    served = serve(chooser, load, clock, {"slow": 900, "fast": 100}, calls=62, every_s=1)
    assert served[:2] == ["slow", "fast"]  # each tried once, untried first
    assert [i for i, name in enumerate(served) if name == "slow"] == [0, 30, 60]


def test_a_recovered_model_wins_its_traffic_back() -> None:
    clock = Clock()
    load = Load(clock=clock)
    chooser = LeastLatency(load, epsilon=0, explore_after_s=30)
    serve(chooser, load, clock, {"sick": 3000, "steady": 200}, calls=300, every_s=1)
    assert (load.ewma_ms("sick") or 0) > 2000
    served = serve(chooser, load, clock, {"sick": 50, "steady": 200}, calls=600, every_s=1)
    assert Counter(served[-100:])["sick"] >= 90  # only the idle one's probe goes elsewhere


# --- least connections ----------------------------------------------------------------


def test_least_connections_puts_the_fewest_in_flight_first() -> None:
    load = Load(clock=Clock())
    chooser = LeastConnections(load, {})
    for name, calls in (("a", 3), ("b", 1), ("c", 2)):
        for _ in range(calls):
            load.started(name)
    assert chooser.order(["a", "b", "c"]) == ["b", "c", "a"]


def test_least_connections_never_passes_max_concurrent_and_says_when_all_are_full() -> None:
    load = Load(clock=Clock())
    limits = {"a": 2, "b": 1, "c": 5}
    chooser = LeastConnections(load, limits)
    busy = 0
    for _ in range(50):  # calls that start and do not finish
        order = chooser.order(["a", "b", "c"])
        if not order:
            busy += 1
            continue
        assert load.try_start(order[0], limits[order[0]])
        assert all(load.in_flight(name) <= limit for name, limit in limits.items())
    assert {name: load.in_flight(name) for name in limits} == limits
    assert busy == 50 - 8
    assert chooser.order(["a", "b", "c"]) == []
    load.finished("b", 10, ok=True)
    assert chooser.order(["a", "b", "c"]) == ["b"]  # the full ones are left out entirely


def test_least_connections_rotates_between_equals() -> None:
    load = Load(clock=Clock())
    latency_ms = {"a": 1, "b": 1, "c": 1}
    served = serve(LeastConnections(load, {}), load, Clock(), latency_ms, calls=6, every_s=1)
    assert served == ["a", "b", "c", "a", "b", "c"]  # every call finished: all at zero


# --- cost optimised --------------------------------------------------------------------

PRICES = {"opus": (15.0, 75.0), "sonnet": (3.0, 15.0), "haiku": (0.8, 4.0), "local": (0.0, 0.0)}
QUALITY = {"opus": 3, "sonnet": 2, "haiku": 1, "local": 1}


def test_cost_optimized_puts_the_cheapest_first() -> None:
    chooser = CostOptimized(PRICES, QUALITY)
    assert chooser.order(["opus", "sonnet", "haiku", "local"]) == [
        "local", "haiku", "sonnet", "opus",
    ]  # fmt: skip


def test_cost_optimized_leaves_out_members_below_the_tier() -> None:
    chooser = CostOptimized(PRICES, QUALITY, min_quality=2)
    assert chooser.order(["opus", "sonnet", "haiku", "local", "unrated"]) == ["sonnet", "opus"]
    assert CostOptimized(PRICES, QUALITY, min_quality=9).order(list(PRICES)) == []


def test_cost_optimized_weighs_output_by_the_assumed_ratio() -> None:
    prices = {"cheap_in": (1.0, 10.0), "cheap_out": (2.0, 2.0)}
    # per million input tokens: 1 + 0.25 * 10 = 3.5 against 2 + 0.25 * 2 = 2.5
    assert CostOptimized(prices, {}).order(list(prices)) == ["cheap_out", "cheap_in"]
    short_answers = CostOptimized(prices, {}, output_per_input=0.05)  # 1.5 against 2.1
    assert short_answers.order(list(prices)) == ["cheap_in", "cheap_out"]


def test_cost_optimized_breaks_ties_by_weight_and_puts_the_unpriced_last() -> None:
    prices = {"x": (1.0, 1.0), "y": (1.0, 1.0)}
    chooser = CostOptimized(prices, {}, weights={"x": 1, "y": 5, "free?": 9})
    assert chooser.order(["free?", "x", "y"]) == ["y", "x", "free?"]


# --- the factory -------------------------------------------------------------------------


def test_the_factory_knows_every_name_the_routing_file_accepts() -> None:
    annotation = Routing.model_fields["default_strategy"].annotation
    assert set(typing.get_args(annotation)) == set(STRATEGY_NAMES)
    load = Load()
    kinds = {name: type(strategy(name, Members(), load)) for name in STRATEGY_NAMES}
    assert kinds == {
        "round_robin": RoundRobin,
        "weighted": Weighted,
        "least_latency": LeastLatency,
        "least_connections": LeastConnections,
        "cost_optimized": CostOptimized,
    }


def test_the_factory_hands_each_strategy_its_members_data() -> None:
    members = Members(
        weights={"a": 3, "b": 1}, max_concurrent={"a": 1}, prices={"a": (9.0, 9.0)},
        quality={"a": 1, "b": 2},
    )  # fmt: skip
    load = Load()
    assert Counter(firsts(strategy("weighted", members, load), ["a", "b"], 4)) == {"a": 3, "b": 1}
    load.started("a")
    assert strategy("least_connections", members, load).order(["a", "b"]) == ["b"]
    assert strategy("cost_optimized", members, load, min_quality=2).order(["a", "b"]) == ["b"]


def test_the_factory_refuses_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        strategy("fastest", Members(), Load())
