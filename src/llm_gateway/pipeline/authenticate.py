"""Stage 1: who is calling. Runs before the body is read, so strangers cost nothing.

Once the credential is verified, whatever it does not say (a tier, a team, a role when
it carries no role claim) is taken from the directory, here and only here, so every
kind of credential inherits alike (see :mod:`llm_gateway.auth.inheritance`).
"""

from __future__ import annotations

from llm_gateway.auth import Authenticator
from llm_gateway.auth.inheritance import Inheritance
from llm_gateway.pipeline.context import Next, Outcome, RequestContext


class Authenticate:
    def __init__(
        self, authenticator: Authenticator, inheritance: Inheritance | None = None
    ) -> None:
        self.authenticator = authenticator
        self.inheritance = inheritance

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        principal = await self.authenticator.authenticate(ctx.credentials)
        if self.inheritance is not None:
            principal = await self.inheritance.resolve(principal)
        ctx.principal = principal
        return await call_next(ctx)
