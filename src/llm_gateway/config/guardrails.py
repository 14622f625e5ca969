"""``config/guardrails.yaml``: confirmations for risky actions, grounding and answer checks.

The file uses the product specification's format unchanged: ``hitl`` (the
human-in-the-loop rules: which prompts and tool calls wait for a person's
confirmation), ``grounding`` and ``validation`` (how an agent's answer is
checked against its own tool results). Each section is validated at start-up
with errors that name the file, the line and the field, so a rule with a typo
stops the gateway instead of silently confirming nothing; the stages that
act on them read these models.

Additions of ours, optional per confirmation rule: ``approvers`` (roles who
must approve instead of the requester) and ``expires_seconds`` (how long a
challenge waits for its answer); and in ``hitl``, ``tool_cost_estimates_usd``
(a tool's cost impact in USD when its call does not state one: what a
rule's ``min_cost_impact_usd`` is compared with, and what the challenge shows).

And in ``grounding``, ``action`` (``annotate``: the verdict goes with the
answer; ``block``: an ungrounded answer is refused) and ``retry`` (0 or 1:
ask the model once more, with a corrective instruction, before acting).

Patterns are RE2, as the DLP rules' are (matching in time linear in the
text, so no prompt can stall the gateway), and match case-insensitively.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator

_ROLE = Annotated[str, Field(min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compile_pattern(pattern: str) -> Any:
    """The rule's pattern, compiled for case-insensitive matching; ValueError if not RE2."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        said = exc.args[0] if exc.args else ""
        said = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        raise ValueError(
            f"not a valid RE2 pattern ({said}); RE2 has no lookaround or back-references"
        ) from None


class ConfirmationRule(_Strict):
    pattern: Annotated[str, Field(min_length=1)]
    environments: list[Annotated[str, Field(min_length=1)]] = []  # only in these (none: any)
    cooldown_seconds: Annotated[float, Field(ge=0)] = 0
    min_cost_impact_usd: Annotated[float, Field(ge=0)] | None = None
    always: bool = False
    require_mfa: bool = False
    approvers: list[_ROLE] = []  # roles that approve instead of the requester
    expires_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] = 900

    @field_validator("pattern")
    @classmethod
    def _re2(cls, value: str) -> str:
        compile_pattern(value)
        return value


class Hitl(_Strict):
    enabled: bool = False
    confirmation_required: list[ConfirmationRule] = []
    tool_cost_estimates_usd: dict[
        Annotated[str, Field(min_length=1)], Annotated[float, Field(ge=0)]
    ] = {}


class Grounding(_Strict):
    enabled: bool = False
    require_tool_citation: bool = False
    max_unsupported_claims: Annotated[int, Field(ge=0)] = 0
    confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.85
    # Additions of ours: what an ungrounded answer gets (the policy's ``grounding``
    # obligation may say otherwise per tenant or model), and how many times the model is
    # asked again, with a corrective instruction, before that.
    action: Literal["annotate", "block"] = "annotate"
    retry: Annotated[int, Field(ge=0, le=1)] = 0


class Validation(_Strict):
    """How an answer is checked once ``grounding`` is enabled: every check, unless turned off."""

    check_tool_output_match: bool = True
    detect_contradictions: bool = True
    flag_speculative_language: bool = True
    blocked_phrases: list[Annotated[str, Field(min_length=1, max_length=200)]] = []

    @field_validator("blocked_phrases")
    @classmethod
    def _words(cls, phrases: list[str]) -> list[str]:
        for phrase in phrases:
            if not any(c.isalnum() for c in phrase):
                raise ValueError(f"{phrase!r} has no word to match")
        return phrases


class Guardrails(_Strict):
    hitl: Hitl = Hitl()
    grounding: Grounding = Grounding()
    validation: Validation = Validation()


class GuardrailsFile(_Strict):
    guardrails: Guardrails = Guardrails()
