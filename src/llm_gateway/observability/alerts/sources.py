"""Where alerts come from: settled requests, the circuit breaker, pending confirmations.

- :class:`AlertRecorder`, one more recorder: each settled request's record
  says whether DLP blocked it (``dlp_block``) or flagged it with the ``alert``
  action (``dlp_alert``), whether the policy could not decide
  (``policy_error``) and whether a token or cost budget refused it
  (``budget_exceeded``). It only queues: a request never waits on a webhook.
- :func:`breaker_listener`: the breaker's ``on_transition``; a circuit that
  opens raises ``breaker_open``, keyed by the model's endpoint.
- :class:`StaleConfirmations`: a periodic check of the confirmations still
  pending; each one older than ``confirmation_stale_seconds`` raises
  ``confirmation_stale`` once.

Keys are chosen so that de-duplication groups what an operator would want
grouped: a DLP block per tenant, team and entity types; a policy error once
for the engine; a budget per code, tenant and team.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from llm_gateway.observability.alerts.service import Alerts
from llm_gateway.records import RequestRecord

__all__ = ["AlertRecorder", "PendingConfirmation", "StaleConfirmations", "breaker_listener"]

BUDGET_CODES = frozenset({"token_budget_exceeded", "cost_budget_exceeded"})


class AlertRecorder:
    """Settled requests as alerts; ``record`` only queues (see the module's doc)."""

    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts

    async def record(self, record: RequestRecord) -> None:
        if record.dlp_action == "block" or record.error_code == "dlp_blocked":
            self._dlp(record, "dlp_block", "block", "blocked")
        elif record.dlp_action == "alert":
            self._dlp(record, "dlp_alert", "alert", "flagged")
        if record.policy_decision == "error" or record.error_code == "policy_error":
            self.alerts.alert(
                "policy_error", "engine",
                f"The policy engine could not decide a request ({record.endpoint})",
                _who(record) | {"policy_revision": record.policy_revision},
            )  # fmt: skip
        if record.error_code in BUDGET_CODES:
            what = "token" if record.error_code == "token_budget_exceeded" else "cost"
            self.alerts.alert(
                "budget_exceeded", f"{record.error_code}:{record.tenant}:{record.team}",
                f"A request was refused: its {what} budget is spent "
                f"(tenant {record.tenant or '-'}, team {record.team or '-'})",
                _who(record) | {"error_code": record.error_code},
            )  # fmt: skip

    def _dlp(self, record: RequestRecord, kind: str, action: str, done: str) -> None:
        acted = [f for f in record.dlp_findings if f.get("action") == action]
        entities = tuple(sorted({str(f.get("entity", "")) for f in acted}))
        directions = tuple(sorted({str(f.get("direction", "")) for f in acted}))
        count = sum(int(f.get("count", 1)) for f in acted)
        label = ", ".join(entities) or "sensitive data"
        self.alerts.alert(
            kind, f"{record.tenant}:{record.team}:{'+'.join(entities)}",
            f"DLP {done} a request carrying {label} (tenant {record.tenant or '-'}, "
            f"team {record.team or '-'})",
            _who(record) | {"entities": entities, "directions": directions, "findings": count},
        )  # fmt: skip


def _who(record: RequestRecord) -> dict[str, str | None]:
    """What an alert may say of a request: ids and configured names, no user, no text."""
    return {
        "request_id": record.request_id,
        "endpoint": record.endpoint,
        "tenant": record.tenant,
        "team": record.team,
        "model": record.model or record.model_requested,
    }


class Transition(Protocol):
    """A circuit's change of state, as :class:`llm_gateway.routing.breaker.Transition` has it
    (its states are ``closed``, ``open`` and ``half_open``, as strings)."""

    @property
    def name(self) -> str: ...
    @property
    def old(self) -> str: ...
    @property
    def new(self) -> str: ...


def breaker_listener(alerts: Alerts) -> Callable[[Transition], None]:
    """The breaker's ``on_transition``: an opened circuit is a ``breaker_open`` alert."""

    def listen(change: Transition) -> None:
        if change.new == "open":
            alerts.alert(
                "breaker_open", change.name,
                f"The circuit breaker of model {change.name} opened ({change.old} -> open)",
                {"model": change.name, "from": str(change.old)},
            )  # fmt: skip

    return listen


class PendingConfirmation(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def verb(self) -> str: ...
    @property
    def rule(self) -> int: ...
    @property
    def created_at(self) -> float: ...
    @property
    def expires_at(self) -> float: ...


class PendingSource(Protocol):
    async def pending(self) -> Sequence[PendingConfirmation]: ...


class StaleConfirmations:
    """A check: each confirmation pending longer than ``age_s`` is alerted once (by this
    process; with several replicas, by each, and PagerDuty's dedup_key joins them)."""

    def __init__(
        self, alerts: Alerts, confirmations: PendingSource, age_s: float,
        clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.alerts = alerts
        self.confirmations = confirmations
        self.age_s = age_s
        self.clock = clock
        self._alerted: set[str] = set()

    async def __call__(self) -> None:
        now = self.clock()
        pending = await self.confirmations.pending()
        self._alerted &= {c.id for c in pending}  # forget the decided and the expired
        for c in pending:
            age = now - c.created_at
            if age < self.age_s or c.id in self._alerted:
                continue
            self._alerted.add(c.id)
            self.alerts.alert(
                "confirmation_stale", c.id,
                f"A confirmation ({c.verb}) has waited {age / 60:.0f} min for its answer "
                f"(tenant {c.tenant or '-'})",
                {"confirmation": c.id, "tenant": c.tenant, "verb": c.verb, "rule": c.rule,
                 "waiting_s": round(age), "expires_in_s": round(c.expires_at - now)},
            )  # fmt: skip
