"""Stage 6: the provider call itself, the innermost stage."""

from __future__ import annotations

from llm_gateway import providers
from llm_gateway.pipeline.context import Next, Outcome, RequestContext
from llm_gateway.transport import Transport


class CallProvider:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        assert ctx.chat is not None
        assert ctx.deployment is not None
        return await providers.call(self.transport, ctx.deployment, ctx.chat)
