"""What the pipeline's tests share: a recorder that keeps what it is given, and a chat context."""

from __future__ import annotations

from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.chat import ChatRequest, Message, TextPart
from llm_gateway.pipeline.context import ChatCall, RequestContext
from llm_gateway.records import RequestRecord


class Keeper:
    """A recorder that keeps every record."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    async def record(self, record: RequestRecord) -> None:
        self.records.append(record)


async def no_body() -> bytes:
    return b""


def chat_context(prompt: str = "hello") -> RequestContext:
    """A parsed chat request to model ``m`` from alice, a user."""
    call = ChatCall(lambda body: ChatRequest(model="m", messages=[]))
    call.request = ChatRequest(model="m", messages=[Message("user", [TextPart(prompt)])])
    call.model_requested = "m"
    ctx = RequestContext(
        endpoint="openai", credentials=Credentials(), read_body=no_body, payload=call
    )
    ctx.principal = Principal(user_id="alice", role="user")
    return ctx
