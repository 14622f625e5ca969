"""What the challenge says: the scope, the environment's risk, the cost impact, the phrase."""

from __future__ import annotations

from llm_gateway.hitl.challenge import challenge_text, confirmation_object
from llm_gateway.hitl.confirmations import Confirmation


def _confirmation(cost: float | None) -> Confirmation:
    return Confirmation(
        id="cf_" + "0" * 24, tenant="acme", user_id="alice", conversation=None, rule=0,
        verb="terminate", phrase="confirm terminate 7 instances",
        scope=tuple(f"i-{n:08x}" for n in range(7)), environment="production",
        requires_mfa=False, approvers=(), created_at=0.0, expires_at=900.0,
        cooldown_until=5.0, cost_impact_usd=cost,
    )  # fmt: skip


def test_the_challenge_shows_a_known_cost_impact_in_text_and_object() -> None:
    c = _confirmation(1234.5)
    text = challenge_text(c, tool_name="terminate_instances", shown=list(c.scope[:2]))
    assert "Estimated cost impact: $1,234.50" in text
    assert "Environment: production (HIGH RISK)" in text
    assert "Type 'confirm terminate 7 instances' to proceed" in text
    assert confirmation_object(c)["cost_impact_usd"] == 1234.5


def test_an_unknown_cost_impact_is_not_guessed() -> None:
    c = _confirmation(None)
    assert "cost" not in challenge_text(c, tool_name=None, shown=[]).lower()
    assert confirmation_object(c)["cost_impact_usd"] is None
