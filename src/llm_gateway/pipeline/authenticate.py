"""Stage 1: who is calling. Runs before the body is read, so strangers cost nothing."""

from __future__ import annotations

from llm_gateway.auth import Authenticator
from llm_gateway.pipeline.context import Next, Outcome, RequestContext


class Authenticate:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        ctx.principal = await self.authenticator.authenticate(ctx.credentials)
        return await call_next(ctx)
