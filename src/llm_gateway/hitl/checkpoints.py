"""Whether a prompt or a tool call needs a person's confirmation, and by which rule.

A rule's ``pattern`` (RE2, case-insensitive) is matched on whole words: the
gateway adds the word boundaries, so ``iam`` matches "update the IAM role"
but not "William", and ``secret`` not "secretary". Identifiers are read as
words too: a tool named ``terminate_instances`` or ``terminateInstances``, or
an argument ``"action": "scale-up"``, is matched as "terminate instances" and
"scale up" (and as written, so that a rule may name ``security-group``). The
prompt checkpoint reads the caller's last user message; the tool-call
checkpoint the tool's name, then its arguments.

A rule applies when it is ``always``; otherwise only in its ``environments``
(when it names any) and only at or above its ``min_cost_impact_usd`` (when it
names one, and the cost impact is known: a tool call's ``cost_impact_usd``,
``estimated_cost_usd``, ``cost_usd``, ``estimated_cost`` or ``cost``
argument, else the tool's entry in ``tool_cost_estimates_usd``). The first
rule that applies and matches is the trigger; it carries the cost impact, for
the challenge to show.

Where a request runs is known from several places, most specific first: the
tool call's own arguments (``environment``, ``env`` or ``stage``), the
caller's ``x-environment`` header, the credential's own environment (an API
key's ``--environment``, a token's ``environment`` claim), and the gateway's
``ENVIRONMENT``. A rule
applies when **any** of them is one of its environments: a caller cannot talk
their way out of a production rule by sending ``x-environment: development``.
The challenge names the first of them the rule lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from llm_gateway.chat import ToolCall
from llm_gateway.config.guardrails import ConfirmationRule, Hitl, compile_pattern

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = str.maketrans("_-.:/", "     ")
#: Splitting camelCase costs a pass of Python's regex engine over the text (17 µs a KB):
#: done for tool names and arguments of up to this size, not for prose.
CAMEL_MAX_CHARS = 4096


def words_of(text: str, *, camel: bool = True) -> str:
    """``text`` with identifiers split into words: ``terminateInstances`` and
    ``terminate_instances`` read "terminate Instances" and "terminate instances"."""
    if camel:
        text = _CAMEL.sub(" ", text)
    return text.translate(_SEPARATORS)


def _readings(text: str, *, identifiers: bool) -> list[str]:
    """The text as written (``security-group`` is a word of a rule), then as words."""
    words = words_of(text, camel=identifiers and len(text) <= CAMEL_MAX_CHARS)
    return [text] if words == text else [text, words]


@dataclass(frozen=True, slots=True)
class Trigger:
    """A match: the rule (and its place in the file), the word it matched, and where."""

    index: int
    rule: ConfirmationRule
    verb: str  # the matched word, lower-case ("terminate")
    source: Literal["prompt", "tool_call"]
    environment: str | None  # the first known environment, or the first the rule lists
    tool_call: ToolCall | None = None
    cost_usd: float | None = None  # the cost impact, when known


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    rule: ConfirmationRule
    words: Any  # the compiled RE2 pattern, on word boundaries

    def applies(self, environments: Sequence[str], cost_usd: float | None) -> bool:
        if self.rule.always:
            return True
        listed = self.rule.environments
        if listed and not any(e in listed for e in environments):
            return False
        threshold = self.rule.min_cost_impact_usd
        return threshold is None or (cost_usd is not None and cost_usd >= threshold)

    def where(self, environments: Sequence[str]) -> str | None:
        """The environment the challenge names: the first known one the rule lists."""
        listed = [e for e in environments if e in self.rule.environments]
        first = listed or list(environments)
        return first[0] if first else None

    def verb(self, text: str) -> str | None:
        found = self.words.search(text)
        return found.group(1).lower() if found is not None else None


class Checkpoints:
    def __init__(self, hitl: Hitl) -> None:
        rules = hitl.confirmation_required if hitl.enabled else []
        self._estimates = hitl.tool_cost_estimates_usd
        self._rules = [
            _Rule(i, rule, compile_pattern(rf"\b({rule.pattern})\b"))
            for i, rule in enumerate(rules)
        ]
        # Every call passes here: one search for all the rules says "none" at once.
        alternatives = "|".join(f"(?:{rule.pattern})" for rule in rules)
        self._any = compile_pattern(rf"\b(?:{alternatives})\b") if rules else None

    def __bool__(self) -> bool:
        return bool(self._rules)

    def prompt(
        self, text: str, *, environments: Sequence[str], cost_usd: float | None = None
    ) -> Trigger | None:
        """The rule the caller's last user message triggers, if any."""
        texts = _readings(text, identifiers=False)
        return self._first(texts, environments, cost_usd, "prompt", None)

    def tool_call(
        self, call: ToolCall, *, environments: Sequence[str], cost_usd: float | None = None
    ) -> Trigger | None:
        """The rule a tool call triggers, by its name first, then by its arguments."""
        texts = [
            *_readings(call.name, identifiers=True),
            *_readings(call.arguments, identifiers=True),
        ]
        where, stated = _stated(call.arguments)
        cost = next(
            (c for c in (stated, cost_usd, self._estimates.get(call.name)) if c is not None), None
        )
        return self._first(texts, [*where, *environments], cost, "tool_call", call)

    def _first(
        self,
        texts: Sequence[str],
        environments: Sequence[str],
        cost_usd: float | None,
        source: Literal["prompt", "tool_call"],
        call: ToolCall | None,
    ) -> Trigger | None:
        if self._any is None or not any(self._any.search(t) for t in texts):
            return None
        for rule in self._rules:
            if not rule.applies(environments, cost_usd):
                continue
            for text in texts:
                verb = rule.verb(text)
                if verb is not None:
                    where = rule.where(environments)
                    return Trigger(rule.index, rule.rule, verb, source, where, call, cost_usd)
        return None


#: Where a tool call states its cost impact in USD, at the top of its arguments.
COST_FIELDS = ("cost_impact_usd", "estimated_cost_usd", "cost_usd", "estimated_cost", "cost")


def _stated(arguments: str) -> tuple[list[str], float | None]:
    """What a tool call's arguments say of where it runs (``environment``, ``env``,
    ``stage``) and what it costs (the first of :data:`COST_FIELDS` that is a number)."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return [], None
    if not isinstance(parsed, dict):
        return [], None
    named = (parsed.get(key) for key in ("environment", "env", "stage"))
    environments = [value.lower() for value in named if isinstance(value, str)]
    costs = (parsed.get(key) for key in COST_FIELDS)
    cost = next(
        (float(v) for v in costs if isinstance(v, int | float) and not isinstance(v, bool)), None
    )
    return environments, cost
