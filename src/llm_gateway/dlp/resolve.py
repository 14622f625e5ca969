"""Overlapping findings: which one speaks for the characters they share.

Two rules often see the same characters: the spec's ``credit_card`` rule and
the built-in card detector, an e-mail address inside a database URL. The
anonymiser needs disjoint spans, so among findings that overlap we keep, in
this order of preference:

1. the higher score: a validated or in-context detection beats a guess;
2. a custom rule before a built-in one: at equal confidence the deployment's
   own rule is the more specific statement of intent (the spec's
   ``internal_ip`` rule says *alert* for 10.x addresses, and it should, even
   though the built-in IP detector would redact them);
3. the stricter action (block, then redact, then alert): when two rules of
   the same origin disagree, protection is never downgraded;
4. the more severe;
5. the longer span: it covers what the shorter one would leave exposed;
6. the rule listed first.

Greedy selection in that order, then back into text order. The work is
linear in the total length of the candidates plus a sort: each cluster of
overlapping candidates marks the characters its kept findings claim in a
byte array, and each rule's own matches never overlap one another.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def rank(self) -> tuple[float, bool, int, int, int, int]:
        """Sort key, best first."""
        return (
            -self.score,
            self.builtin,
            -_STRICTNESS[self.action],
            -_SEVERITY[self.severity],
            -(self.end - self.start),
            self.order,
        )


def resolve_overlaps(candidates: list[Candidate]) -> list[Candidate]:
    """Disjoint findings sorted by start; exact duplicates collapse to one."""
    ordered = sorted(candidates, key=lambda c: (c.start, -c.end))
    kept: list[Candidate] = []
    cluster: list[Candidate] = []
    cluster_end = -1
    for candidate in ordered:
        if cluster and candidate.start >= cluster_end:
            kept.extend(_settle(cluster))
            cluster = []
        cluster.append(candidate)
        cluster_end = max(cluster_end, candidate.end) if len(cluster) > 1 else candidate.end
    if cluster:
        kept.extend(_settle(cluster))
    return kept


def _settle(cluster: list[Candidate]) -> list[Candidate]:
    if len(cluster) == 1:
        return cluster
    base = cluster[0].start
    claimed = bytearray(max(c.end for c in cluster) - base)
    chosen: list[Candidate] = []
    for candidate in sorted(cluster, key=Candidate.rank):
        start, end = candidate.start - base, candidate.end - base
        if claimed.find(1, start, end) != -1:
            continue
        claimed[start:end] = b"\x01" * (end - start)
        chosen.append(candidate)
    chosen.sort(key=lambda c: c.start)
    return chosen
