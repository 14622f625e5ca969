"""What ``auto`` looks at before the strategy: experiments first, then capability rules.

A running experiment decides for the traffic it matches (that is what an
experiment is for: its arms must not be skewed by a rule that would have
caught part of it); then the capability rules, first match wins; then the
default strategy. A rule's or an arm's target that the caller may not use, or
that is down, full or open-circuited, falls through: the caller is never
refused because a rule pointed at the wrong place.

Matching is on the last user message, case-insensitive, on word boundaries
(``code`` matches "debug this code" but not "barcode"); every condition a
``match`` names must hold; an empty ``match`` matches everything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from llm_gateway.chat import ChatRequest
from llm_gateway.config.routing import CapabilityRouting, Experiment, Match
from llm_gateway.tokens import quick_estimate


@dataclass(frozen=True, slots=True)
class _Matcher:
    words: re.Pattern[str] | None
    token_estimate_gt: int | None
    user_tier: str | None

    @classmethod
    def of(cls, match: Match) -> _Matcher:
        words = None
        if match.prompt_contains:
            alternatives = "|".join(re.escape(w) for w in match.prompt_contains)
            words = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return cls(words, match.token_estimate_gt, match.user_tier)

    def matches(self, request: Facts) -> bool:
        if self.user_tier is not None and request.tier != self.user_tier:
            return False
        if self.token_estimate_gt is not None and request.tokens() <= self.token_estimate_gt:
            return False
        return self.words is None or self.words.search(request.last_user_text) is not None


class Facts:
    """What the rules read from one request, each computed at most once."""

    __slots__ = ("_chat", "_tokens", "last_user_text", "tier", "user_id")

    def __init__(self, chat: ChatRequest, *, user_id: str, tier: str | None) -> None:
        self._chat = chat
        self._tokens: int | None = None
        self.user_id = user_id
        self.tier = tier
        self.last_user_text = next(
            (m.text for m in reversed(chat.messages) if m.role == "user"), ""
        )

    def tokens(self) -> int:
        """The prompt's estimated tokens (the cheap character rule, as the limits use)."""
        if self._tokens is None:
            self._tokens = quick_estimate(self._chat.texts())
        return self._tokens


@dataclass(frozen=True, slots=True)
class Arm:
    """The model an experiment assigned, recorded as ``experiment:arm`` in the audit row."""

    experiment: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.experiment}:{self.model}"


class Rules:
    def __init__(
        self,
        capability: CapabilityRouting | None = None,
        experiments: Sequence[Experiment] = (),
    ) -> None:
        capability = capability or CapabilityRouting()
        self._rules = (
            [(_Matcher.of(r.match), r.route_to) for r in capability.rules]
            if capability.enabled
            else []
        )
        self._experiments = [
            (_Matcher.of(e.match), e.name, _cumulative(e)) for e in experiments if e.enabled
        ]

    def __bool__(self) -> bool:
        return bool(self._rules or self._experiments)

    def arm(self, facts: Facts) -> Arm | None:
        """The first matching experiment's arm for this user: the same on every request."""
        for matcher, name, bounds in self._experiments:
            if matcher.matches(facts):
                point = bucket(name, facts.user_id)
                model = next(m for m, upper in bounds if point < upper)
                return Arm(name, model)
        return None

    def target(self, facts: Facts) -> str | None:
        """The model the first matching capability rule routes to."""
        return next((target for matcher, target in self._rules if matcher.matches(facts)), None)


def bucket(experiment: str, user_id: str) -> int:
    """0 to 99, from a digest of the experiment and the user: stable per user, independent
    across experiments (so one user is not in the first arm of every experiment)."""
    digest = hashlib.blake2b(f"{experiment}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def _cumulative(experiment: Experiment) -> list[tuple[str, int]]:
    bounds, total = [], 0
    for model, share in experiment.traffic_split.items():
        total += share
        bounds.append((model, total))
    return bounds
