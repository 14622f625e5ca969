"""A policy's decision, and the shapes a Rego rule may give it.

The decision rule may be a boolean (``allow``) or an object::

    {"allow": true, "reasons": ["..."],
     "deanonymize": false, "dlp_mode": "redact", "max_tokens": 1024,
     "features": ["streaming", "tools"], "ner": true,
     "ner_partial": "pass", "ner_answers": false}

Everything but ``allow`` is optional. The obligations are what the later
stages obey; anything else in the object is ignored. A result of any other
shape is a policy error, which denies: a policy that does not say "allow" in a
way we understand never allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_gateway.dlp.findings import Action

DLP_MODES = tuple(action.value for action in Action)
NER_PARTIAL = ("pass", "block")
GROUNDING_MODES = ("off", "annotate", "block")
_COLLECTIONS = (list, set, frozenset)  # regorus gives Rego sets as Python sets; OPA as lists


class PolicyError(Exception):
    """The policy could not give a decision: evaluation failed, or its result is malformed."""


@dataclass(frozen=True, slots=True)
class Obligations:
    """What an allow comes with. ``None`` means the policy did not say."""

    deanonymize: bool = False
    dlp_mode: str | None = None
    max_tokens: int | None = None
    features: frozenset[str] | None = None  # None: every feature; else only these
    ner: bool | None = None  # whether names and places are looked for; None: the default
    # Whether a request NER could read only part of (its time budget or size cap ran
    # out, or the detector is not installed) may pass: "pass" (None: the default) or
    # "block" (503 dlp_unavailable).
    ner_partial: str | None = None
    ner_answers: bool = False  # whether names and places are looked for in answers too
    grounding: str | None = None  # off, annotate or block; None: guardrails.yaml's


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...] = ()
    obligations: Obligations = field(default_factory=Obligations)
    revision: str = ""  # which policy decided: a hash of its modules and data
    eval_us: float = 0.0
    error: str | None = None  # set when the decision is a fail-closed denial

    @classmethod
    def failed(cls, problem: str, revision: str) -> Decision:
        """The fail-closed denial given when no decision could be had."""
        return cls(False, ("the policy could not be evaluated",), revision=revision, error=problem)

    def permits(self, feature: str) -> bool:
        features = self.obligations.features
        return self.allow and (features is None or feature in features)


def decision_from_result(result: Any, *, revision: str = "") -> Decision:
    """Read a rule's value. ``None`` (undefined) denies; any unknown shape raises."""
    if result is None:
        return Decision(False, ("the policy gave no decision (undefined)",), revision=revision)
    if isinstance(result, bool):
        return Decision(result, revision=revision)
    if not isinstance(result, dict):
        raise PolicyError(f"the decision must be a boolean or an object, not {_kind(result)}")
    allow = result.get("allow", False)
    if not isinstance(allow, bool):
        raise PolicyError(f"the decision's 'allow' must be a boolean, not {_kind(allow)}")
    return Decision(
        allow,
        _reasons(result.get("reasons")),
        _obligations(result),
        revision=revision,
    )


def _reasons(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, _COLLECTIONS) and all(isinstance(v, str) for v in value):
        return tuple(sorted(value))  # a Rego set has no order; make the log stable
    raise PolicyError("the decision's 'reasons' must be a string or a list of strings")


def _obligations(result: dict[str, Any]) -> Obligations:
    deanonymize = result.get("deanonymize", False)
    if not isinstance(deanonymize, bool):
        raise PolicyError("the decision's 'deanonymize' must be a boolean")
    dlp_mode = result.get("dlp_mode")
    if dlp_mode is not None and dlp_mode not in DLP_MODES:
        raise PolicyError(f"the decision's 'dlp_mode' must be one of {', '.join(DLP_MODES)}")
    max_tokens = result.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise PolicyError("the decision's 'max_tokens' must be a positive integer")
    features = result.get("features")
    if features is not None and not (
        isinstance(features, _COLLECTIONS) and all(isinstance(f, str) for f in features)
    ):
        raise PolicyError("the decision's 'features' must be a list of strings")
    ner = result.get("ner")
    if ner is not None and not isinstance(ner, bool):
        raise PolicyError("the decision's 'ner' must be a boolean")
    ner_partial = result.get("ner_partial")
    if ner_partial is not None and ner_partial not in NER_PARTIAL:
        raise PolicyError(f"the decision's 'ner_partial' must be one of {', '.join(NER_PARTIAL)}")
    ner_answers = result.get("ner_answers", False)
    if not isinstance(ner_answers, bool):
        raise PolicyError("the decision's 'ner_answers' must be a boolean")
    grounding = result.get("grounding")
    if grounding is not None and grounding not in GROUNDING_MODES:
        modes = ", ".join(GROUNDING_MODES)
        raise PolicyError(f"the decision's 'grounding' must be one of {modes}")
    return Obligations(
        ner=ner,
        ner_partial=ner_partial,
        ner_answers=ner_answers,
        grounding=grounding,
        deanonymize=deanonymize,
        dlp_mode=dlp_mode,
        max_tokens=max_tokens,
        features=frozenset(features) if features is not None else None,
    )


def _kind(value: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", list: "a list"}.get(
        type(value), type(value).__name__
    )


def rule_of(policy_path: str) -> str:
    """OPA's Data API path to the rule's name in ``data``: /v1/data/a/b -> data.a.b."""
    return "data." + ".".join(policy_path.strip("/").split("/")[2:])
