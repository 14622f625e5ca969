"""Read the body (within the size limit) and translate it with the front door's parser."""

from __future__ import annotations

from llm_gateway.pipeline.context import Next, Outcome, RequestContext


class ParseRequest:
    async def __call__(self, ctx: RequestContext, call_next: Next) -> Outcome:
        call = ctx.call
        call.request = call.parse(await ctx.read_body())
        return await call_next(ctx)
