"""This request's order: configured for models and chains; for auto, experiments, rules and
the strategy; a conversation first to the model that served it first."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llm_gateway.config import Deployment
from llm_gateway.config.routing import CapabilityRouting
from llm_gateway.routing import Facts, Resolution, Router, Rules, rules
from llm_gateway.tokens import quick_estimate
from tests.pipeline.deployments import deployment
from tests.routing.test_rules import RULES, _facts
from tests.state.cases import StoreCase

A, B, C = deployment("coder"), deployment("long"), deployment("other")


class Reversed:
    def order(self, names: Sequence[str]) -> list[str]:
        return list(reversed(names))


def _names(order: Sequence[Deployment]) -> list[str]:
    return [d.name for d in order]


async def test_a_chain_keeps_its_order_whatever_the_strategy() -> None:
    router = Router(strategy=Reversed(), strategy_name="reversed")
    plan = await router.plan(Resolution("main", (A, B), "chain"), None, tenant=None,
                             conversation_id=None)  # fmt: skip
    assert (_names(plan.order), plan.route) == (["coder", "long"], "chain")


async def test_auto_without_a_matching_rule_follows_the_strategy() -> None:
    router = Router(strategy=Reversed(), strategy_name="reversed", rules=Rules(RULES))
    facts = _facts("hello")
    plan = await router.plan(Resolution("auto", (A, B, C), "auto"), facts, tenant=None,
                             conversation_id=None)  # fmt: skip
    assert (_names(plan.order), plan.route) == (["other", "long", "coder"], "reversed")


async def test_auto_puts_the_rules_target_first_and_keeps_the_rest_as_fallbacks() -> None:
    router = Router(strategy=Reversed(), strategy_name="reversed", rules=Rules(RULES))
    plan = await router.plan(Resolution("auto", (A, B, C), "auto"), _facts("fix my code"),
                             tenant=None, conversation_id=None)  # fmt: skip
    assert (_names(plan.order), plan.route) == (["coder", "other", "long"], "rule")


async def test_a_rules_target_the_caller_may_not_use_falls_through_to_the_strategy() -> None:
    """The policy dropped ``coder`` from the candidates: the rule cannot send the call there."""
    router = Router(strategy=Reversed(), strategy_name="reversed", rules=Rules(RULES))
    plan = await router.plan(Resolution("auto", (B, C), "auto"), _facts("fix my code"),
                             tenant=None, conversation_id=None)  # fmt: skip
    assert (_names(plan.order), plan.route) == (["other", "long"], "reversed")


async def test_a_conversation_stays_on_the_model_that_served_it_first(
    store_case: StoreCase,
) -> None:
    router = Router(store=store_case.store, rules=Rules(CapabilityRouting()))
    chain = Resolution("main", (A, B), "chain")
    first = await router.plan(chain, None, tenant="t1", conversation_id="conv-1")
    assert _names(first.order) == ["coder", "long"]
    await router.remember(first, B)  # the first model failed; the second served
    await router.remember(first, A)  # only the first to serve is kept
    again = await router.plan(chain, None, tenant="t1", conversation_id="conv-1")
    assert (_names(again.order), again.route) == (["long", "coder"], "sticky")
    other_tenant = await router.plan(chain, None, tenant="t2", conversation_id="conv-1")
    assert _names(other_tenant.order) == ["coder", "long"]
    no_header = await router.plan(chain, None, tenant="t1", conversation_id=None)
    assert _names(no_header.order) == ["coder", "long"]
    assert await store_case.store.ttl(again.sticky_key or "") is not None


async def test_a_sticky_model_the_caller_may_no_longer_use_is_not_forced(
    store_case: StoreCase,
) -> None:
    router = Router(store=store_case.store)
    plan = await router.plan(Resolution("main", (A, B), "chain"), None, tenant=None,
                             conversation_id="c")  # fmt: skip
    await router.remember(plan, B)
    narrowed = await router.plan(
        Resolution("main", (A, C), "chain"), None, tenant=None, conversation_id="c"
    )
    assert (_names(narrowed.order), narrowed.route) == (["coder", "other"], "chain")


def test_facts_count_tokens_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[int] = []

    def estimate(texts: list[str]) -> int:
        counted.append(1)
        return quick_estimate(texts)

    monkeypatch.setattr(rules, "quick_estimate", estimate)
    facts: Facts = _facts("word " * 40)
    assert facts.tokens() == facts.tokens() > 40
    assert len(counted) == 1
