"""The checker's options from ``config/guardrails.yaml``'s ``grounding`` and ``validation``."""

from __future__ import annotations

from llm_gateway.config.guardrails import Guardrails
from llm_gateway.grounding.model import Options


def options_of(guardrails: Guardrails) -> Options:
    """The file's settings when grounding is enabled there; the checker's defaults if not
    (what the grounding API checks with on a gateway that does not ground its answers)."""
    grounding, validation = guardrails.grounding, guardrails.validation
    if not grounding.enabled:
        return Options()
    return Options(
        require_tool_citation=grounding.require_tool_citation,
        max_unsupported_claims=grounding.max_unsupported_claims,
        confidence_threshold=grounding.confidence_threshold,
        check_tool_output_match=validation.check_tool_output_match,
        detect_contradictions=validation.detect_contradictions,
        flag_speculative_language=validation.flag_speculative_language,
        blocked_phrases=tuple(validation.blocked_phrases),
    )
