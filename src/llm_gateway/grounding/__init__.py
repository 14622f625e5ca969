"""The grounding checker: does an agent's answer say what its tools returned?

``check(conversation, answer, options)`` returns a :class:`Verdict`; see
:mod:`llm_gateway.grounding.checker` for the checks and how they fail.
"""

from llm_gateway.grounding.checker import check
from llm_gateway.grounding.model import (
    Claim,
    Conversation,
    Options,
    Phrase,
    ToolResult,
    Uncited,
    Verdict,
)

__all__ = [
    "Claim",
    "Conversation",
    "Options",
    "Phrase",
    "ToolResult",
    "Uncited",
    "Verdict",
    "check",
]
