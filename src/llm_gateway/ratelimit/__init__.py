"""Rate limits, token and cost budgets on the shared state store (see :mod:`.limiter`)."""

from llm_gateway.ratelimit.limiter import (
    Admission,
    BudgetRecorder,
    CostBudgetExceeded,
    Limiter,
    LimitsUnavailable,
    TokenBudgetExceeded,
    Window,
)

__all__ = [
    "Admission",
    "BudgetRecorder",
    "CostBudgetExceeded",
    "Limiter",
    "LimitsUnavailable",
    "TokenBudgetExceeded",
    "Window",
]
