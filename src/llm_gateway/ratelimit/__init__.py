"""Rate limits, token and cost budgets on the shared state store (see :mod:`.limiter`).

Its refusals are in the one error tree (:mod:`llm_gateway.errors`): ``RateLimited``,
``TokenBudgetExceeded``, ``CostBudgetExceeded`` and ``LimitsUnavailable``.
"""

from llm_gateway.ratelimit.limiter import Admission, BudgetRecorder, Limiter, Window

__all__ = ["Admission", "BudgetRecorder", "Limiter", "Window"]
