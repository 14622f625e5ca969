"""Stage 5: which deployment serves the request.

Today a model name maps to its one deployment. Strategies, fallback chains
and circuit breaking will grow here, around the single-attempt provider call.
"""

from __future__ import annotations

from collections.abc import Mapping

from llm_gateway.chat import Outcome
from llm_gateway.config import Deployment
from llm_gateway.errors import ModelNotFound, ModelUnavailable
from llm_gateway.pipeline.context import Next, RequestContext


class Route:
    def __init__(self, deployments: Mapping[str, Deployment]) -> None:
        self.deployments = deployments

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.chat is not None
        deployment = self.deployments.get(ctx.chat.model)
        if deployment is None:
            raise model_not_found(ctx.chat.model)
        if not deployment.enabled:
            raise ModelUnavailable(f"the model {ctx.chat.model!r} is not available right now")
        ctx.deployment = deployment
        return await call_next(ctx)


def model_not_found(name: str) -> ModelNotFound:
    return ModelNotFound(
        f"the model {name!r} is not served here; GET /v1/models lists yours", param="model"
    )
