"""Human-in-the-loop: which prompts and agents' tool calls wait for a person's confirmation.

:mod:`.checkpoints` decides whether a prompt or a tool call matches a rule
of ``config/guardrails.yaml``'s ``hitl`` section; :mod:`.phrase` derives what
the challenge shows and the exact phrase that confirms it. The pipeline stage
that holds requests and answers, and the confirmations' store and API, build
on these.
"""

from llm_gateway.hitl.checkpoints import Checkpoints, Trigger, words_of
from llm_gateway.hitl.phrase import Scope, confirmation_phrase, normalised, scope_of

__all__ = [
    "Checkpoints", "Scope", "Trigger", "confirmation_phrase", "normalised", "scope_of",
    "words_of",
]  # fmt: skip
