"""What DLP found in one request and its answer: for the caller, the audit row and alerts.

Only types, counts and actions are kept beyond the request; never the values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from llm_gateway.dlp.findings import Action, Finding
from llm_gateway.dlp.ner import NerStatus
from llm_gateway.dlp.outbound import redact_with_markers

Direction = Literal["request", "response"]
_STRENGTH = {Action.ALERT: 1, Action.REDACT: 2, Action.BLOCK: 3}


@dataclass(slots=True)
class DlpReport:
    findings: list[tuple[Direction, Finding]] = field(default_factory=list)
    ner: dict[Direction, NerStatus] = field(default_factory=dict)  # how much NER read

    def add(self, direction: Direction, findings: list[Finding]) -> None:
        self.findings.extend((direction, f) for f in findings)

    def ner_read(self, direction: Direction, status: NerStatus) -> None:
        """Say how much of the request (or answer) NER read; an answer's scans add up."""
        before = self.ner.get(direction)
        if before is not None and status.state != "off" and before.state != "off":
            scanned = before.scanned_chars + status.scanned_chars
            total = before.total_chars + status.total_chars
            reasons = [r for r in (before.reason, status.reason) if r]
            status = NerStatus.of(scanned, total, list(dict.fromkeys(reasons)))
        self.ner[direction] = status

    @property
    def ner_summary(self) -> str | None:
        """For the audit row: ``partial (time budget)``, and the answer's as ``; answer: ...``."""
        request, response = self.ner.get("request"), self.ner.get("response")
        if response is None:
            return str(request) if request is not None else None
        return f"{request or 'off'}; answer: {response}"

    @property
    def labels(self) -> list[str]:
        """The kinds of sensitive data seen (``SSN``, ``EMAIL``...), as the native API shows."""
        return sorted({f.label for _, f in self.findings})

    @property
    def strongest_action(self) -> Action | None:
        actions = [f.action for _, f in self.findings]
        return max(actions, key=_STRENGTH.__getitem__) if actions else None

    def summary(self) -> list[dict[str, Any]]:
        """``[{entity, direction, count, action}]``, for the audit row."""
        counts = Counter((d, f.entity, f.action.value) for d, f in self.findings)
        return [
            {"entity": entity, "direction": direction, "count": n, "action": action}
            for (direction, entity, action), n in sorted(counts.items())
        ]


def blocked_details(findings: list[Finding]) -> dict[str, Any]:
    """The rules that blocked and their severities: safe to show, the matched text never is."""
    seen = {(f.rule, f.entity, f.severity.value) for f in findings}
    return {
        "findings": [
            {"rule": rule, "entity": entity, "severity": severity}
            for rule, entity, severity in sorted(seen)
        ]
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    """A finding as the scan API shows it: where and what kind, never the value."""
    return {
        "entity": finding.entity,
        "category": finding.category,
        "start": finding.start,
        "end": finding.end,
        "score": round(finding.score, 3),
        "rule": finding.rule,
        "action": finding.action.value,
    }


def redact_all(text: str, findings: list[Finding]) -> str:
    """Every finding replaced by its marker, alerts included: for showing, never forwarding."""
    return redact_with_markers(text, [replace(f, action=Action.REDACT) for f in findings])
