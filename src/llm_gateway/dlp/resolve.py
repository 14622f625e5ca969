"""Overlapping findings: which one speaks for the characters they share.

Two rules often see the same characters: the spec's ``credit_card`` rule and
the built-in card detector, an e-mail address inside a database URL. Two
principles settle them, so that no rule can weaken another:

* **The strictest action applies.** Findings that act on the text (block,
  redact) are settled apart from alerts. An alert changes nothing in the
  text, so it is kept for what it is, an alert, even where it overlaps a
  finding that redacts or blocks; it can never make that finding lose.
* **Redaction covers the union.** Among overlapping acting findings, one
  speaks for each character (the anonymiser needs disjoint spans), and the
  ones kept cover every character any of them matched: a shorter winner is
  widened over what the losers would have left exposed.

* **A confirmed detector is not cut down by a looser rule.** A custom rule
  whose match lies inside a built-in's larger, validated match (the
  specification's Luhn-only ``credit_card`` on the middle of an IBAN that
  passed mod-97 and its country's length) gives way to it, unless the
  custom rule's action is stricter: the redaction is the same, and the
  finding keeps the name of what the text really is.

Among overlapping findings of one kind, the one that speaks is the first by:

1. the stricter action (block, then redact);
2. the higher score: a validated or in-context detection beats a guess;
3. a custom rule before a built-in one: at equal confidence the deployment's
   own rule is the more specific statement of intent;
4. the more severe;
5. the longer span: it covers what the shorter one would leave exposed;
6. the rule listed first.

Greedy selection in that order, then back into text order, then the kept
findings of a cluster of overlaps are widened to fill the cluster. The work
is linear in the total length of the candidates plus a sort: each cluster of
overlapping candidates marks the characters its kept findings claim in a
byte array, and each rule's own matches never overlap one another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llm_gateway.dlp.findings import Action, Severity

_STRICTNESS = {Action.ALERT: 0, Action.REDACT: 1, Action.BLOCK: 2}
_SEVERITY = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A validated match, in original-text offsets, before overlaps are settled."""

    start: int
    end: int
    score: float
    action: Action
    severity: Severity
    builtin: bool
    order: int  # the rule's position in the engine's list
    validated: bool = False  # a built-in whose validator confirmed the value

    def rank(self) -> tuple[int, float, bool, int, int, int]:
        """Sort key, best first."""
        return (
            -_STRICTNESS[self.action],
            -self.score,
            self.builtin,
            -_SEVERITY[self.severity],
            -(self.end - self.start),
            self.order,
        )


def resolve_overlaps(candidates: list[Candidate]) -> list[Candidate]:
    """Alerts, and disjoint acting findings covering every acting match, sorted by start.

    Exact duplicates collapse to one.
    """
    acting = [c for c in candidates if c.action is not Action.ALERT]
    alerts = [c for c in candidates if c.action is Action.ALERT]
    if not alerts:
        return _resolve(acting, widen=True)
    if not acting:
        return _resolve(alerts, widen=False)
    kept = _resolve(acting, widen=True) + _resolve(alerts, widen=False)
    return sorted(kept, key=lambda c: (c.start, c.end))


def _resolve(candidates: list[Candidate], *, widen: bool) -> list[Candidate]:
    ordered = sorted(candidates, key=lambda c: (c.start, -c.end))
    kept: list[Candidate] = []
    cluster: list[Candidate] = []
    cluster_end = -1
    for candidate in ordered:
        if cluster and candidate.start >= cluster_end:
            kept.extend(_settle(cluster, widen))
            cluster = []
        cluster.append(candidate)
        cluster_end = max(cluster_end, candidate.end) if len(cluster) > 1 else candidate.end
    if cluster:
        kept.extend(_settle(cluster, widen))
    return kept


def _settle(cluster: list[Candidate], widen: bool) -> list[Candidate]:
    if len(cluster) == 1:
        return cluster
    cluster = _without_contained_custom(cluster)
    base = cluster[0].start
    end = max(c.end for c in cluster)
    claimed = bytearray(end - base)
    chosen: list[Candidate] = []
    for candidate in sorted(cluster, key=Candidate.rank):
        start, stop = candidate.start - base, candidate.end - base
        if claimed.find(1, start, stop) != -1:
            continue
        claimed[start:stop] = b"\x01" * (stop - start)
        chosen.append(candidate)
    chosen.sort(key=lambda c: c.start)
    if not widen:
        return chosen
    # The cluster's matches overlap one another, so together they cover one run of
    # characters: each kept finding reaches to the next, the first from the
    # cluster's start, the last to its end.
    starts = [base] + [c.start for c in chosen[1:]]
    ends = [c.start for c in chosen[1:]] + [end]
    return [
        c if (c.start, c.end) == (s, e) else replace(c, start=s, end=e)
        for c, s, e in zip(chosen, starts, ends, strict=True)
    ]


def _without_contained_custom(cluster: list[Candidate]) -> list[Candidate]:
    """``cluster`` (sorted by start, then longest first) without the custom findings
    that lie inside a larger validated built-in one at least as strict.

    One pass: the furthest end reached so far by a validated built-in, per
    strictness, tells whether one that started no later covers a candidate.
    """
    if all(c.builtin for c in cluster) or not any(c.validated for c in cluster):
        return cluster
    reach = {strictness: -1 for strictness in _STRICTNESS.values()}
    widest: dict[int, tuple[int, int]] = {}
    kept: list[Candidate] = []
    for candidate in cluster:
        strictness = _STRICTNESS[candidate.action]
        if not candidate.builtin:
            covering = [widest[s] for s in reach if s >= strictness and reach[s] >= candidate.end]
            if any(span != (candidate.start, candidate.end) for span in covering):
                continue
        elif candidate.validated and candidate.end > reach[strictness]:
            reach[strictness] = candidate.end
            widest[strictness] = (candidate.start, candidate.end)
        kept.append(candidate)
    return kept
