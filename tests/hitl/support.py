"""What the confirmations' tests share: a pending confirmation and a clock to move."""

from __future__ import annotations

from llm_gateway.hitl.confirmations import Confirmation, new_confirmation_id
from tests.state.cases import StoreCase

NOW = 1_000.0


def pending_confirmation(**fields: object) -> Confirmation:
    values: dict[str, object] = {
        "id": new_confirmation_id(), "tenant": "acme", "user_id": "alice",
        "conversation": "conv-1", "rule": 0, "verb": "terminate",
        "phrase": "confirm terminate 7 instances", "scope": ("i-1", "i-2"),
        "environment": "production", "requires_mfa": False, "approvers": (),
        "created_at": NOW, "expires_at": NOW + 900, "cooldown_until": NOW + 5,
        "held": {"tool_calls": [{"id": "c1", "name": "terminate_instances", "arguments": "{}"}]},
    }  # fmt: skip
    values.update(fields)
    return Confirmation(**values)  # type: ignore[arg-type]


class Clock:
    """The confirmations' clock, moved by the test; the memory store's moves with it."""

    def __init__(self, case: StoreCase) -> None:
        self.case, self.now = case, NOW

    def __call__(self) -> float:
        return self.now

    def to(self, moment: float) -> None:
        if self.case.clock is not None:
            self.case.clock.now = moment
        self.now = moment
