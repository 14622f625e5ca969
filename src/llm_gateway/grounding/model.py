"""The checker's input (a conversation's tool results and the answer) and its verdict.

Plain frozen dataclasses, so that the pipeline, the HTTP API and the tests can
build them without the gateway's configuration; the verdict turns itself into
the API's JSON object and into the audit row's one-line summary (which carries
counts only: no tool output and no answer text reaches the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal[
    "number",
    "count",
    "money",
    "percent",
    "identifier",
    "ip",
    "arn",
    "email",
    "host",
    "date",
    "time",
    "state",
    "name",
]
Status = Literal["supported", "derived", "unsupported", "contradicted"]

# The failed checks' names: stable strings that the API and audit rows carry.
UNSUPPORTED = "unsupported_claims"
CONTRADICTION = "contradiction"
SPECULATIVE = "speculative_language"
BLOCKED = "blocked_phrase"
CITATION = "citation"
CONFIDENCE = "confidence"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One tool call and its result, as the conversation holds them."""

    call_id: str | None  # the tool call's id (OpenAI tool_call_id / Anthropic tool_use id)
    name: str | None  # the tool's name, from the assistant's tool call
    arguments: str  # the call's arguments, JSON text ("" if unknown)
    output: str  # the tool's result text: JSON or plain text
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the answer may rely on: tool results first, the question and context as known text."""

    tools: tuple[ToolResult, ...]
    question: str = ""  # the user's messages' text joined; quoting it is not unsupported
    context: str = ""  # system prompt and earlier assistant text: known, not tool evidence


@dataclass(frozen=True, slots=True)
class Options:
    """The checks to run and their limits (the config file's grounding and validation)."""

    require_tool_citation: bool = False
    max_unsupported_claims: int = 0
    confidence_threshold: float = 0.85
    check_tool_output_match: bool = True  # unsupported claims count
    detect_contradictions: bool = True
    flag_speculative_language: bool = True
    blocked_phrases: tuple[str, ...] = ("I think", "probably", "might be", "I assume")
    max_evidence_chars: int = 2_000_000
    max_answer_chars: int = 200_000  # an answer beyond this is checked up to here only


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable statement in the answer and what the tool outputs say of it."""

    start: int
    end: int
    text: str
    kind: Kind
    status: Status
    tool_call_id: str | None  # the tool whose output supports or contradicts it
    found: str | None  # the tool's value it matched, or that contradicts it
    explanation: str

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "kind": self.kind,
            "status": self.status,
            "tool_call_id": self.tool_call_id,
            "found": self.found,
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class Phrase:
    """A speculative or blocked phrase found in the answer."""

    start: int
    end: int
    phrase: str
    source: Literal["speculative", "blocked"]

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "phrase": self.phrase, "source": self.source}


@dataclass(frozen=True, slots=True)
class Uncited:
    """A claim without a citation of a tool that supports it, or a citation of an unknown tool."""

    start: int
    end: int
    text: str
    reason: Literal["missing", "wrong_tool", "unknown_tool"]
    tool: str | None  # the cited id or name, when there is one

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "reason": self.reason,
            "tool": self.tool,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the answer is grounded in its tool results, and why not."""

    grounded: bool
    score: float
    claims: tuple[Claim, ...]
    unsupported: int
    contradictions: int
    speculative: tuple[Phrase, ...]
    uncited: tuple[Uncited, ...]
    failed: tuple[str, ...]
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        """The API's object (``POST /api/v1/guardrails/grounding``)."""
        return {
            "grounded": self.grounded,
            "score": round(self.score, 4),
            "claims": [claim.to_json() for claim in self.claims],
            "unsupported": self.unsupported,
            "contradictions": self.contradictions,
            "speculative": [phrase.to_json() for phrase in self.speculative],
            "uncited": [item.to_json() for item in self.uncited],
            "failed": list(self.failed),
            "truncated": self.truncated,
        }

    def audit_summary(self) -> str:
        """One line of counts and check names for the audit row: no values, no answer text."""
        parts = [
            f"grounded={'true' if self.grounded else 'false'}",
            f"score={self.score:.2f}",
            f"claims={len(self.claims)}",
            f"contradicted={self.contradictions}",
            f"unsupported={self.unsupported}",
            f"speculative={len(self.speculative)}",
        ]
        if self.uncited:
            parts.append(f"uncited={len(self.uncited)}")
        if self.truncated:
            parts.append("truncated=true")
        if self.failed:
            parts.append("failed=" + ",".join(self.failed))
        return " ".join(parts)
