"""The canonical, provider-neutral chat model.

Front doors translate their wire format into these types and provider adapters
translate out of them, so any client format can reach any provider. They are
plain slotted dataclasses rather than pydantic models: they are built once per
request from already-validated input, and the hot path should not pay for a
second validation.

Conventions:
- The system prompt is held apart from the conversation (``ChatRequest.system``),
  as Anthropic requires; OpenAI's system/developer messages are collected into it.
- Tool results are ``role="tool"`` messages carrying ``tool_call_id``, one per
  result, as in OpenAI's format; Anthropic's ``tool_result`` blocks are split
  into such messages and merged back on the way out.
- Tool-call arguments are kept as JSON text, because OpenAI streams them as text
  fragments and a gateway must not reinterpret what it merely forwards.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image given by URL, or inline as base64 ``data`` with its media type."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None


ContentPart = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(slots=True)
class Message:
    role: Role
    content: list[ContentPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # on role="tool": which call this answers
    is_error: bool = False  # on role="tool": the tool reported a failure
    name: str | None = None

    @property
    def text(self) -> str:
        """The message's text parts joined, for the many places that only need text."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class ToolSpec:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON Schema


@dataclass(slots=True)
class ToolChoice:
    """``mode`` is auto, none or required; ``name`` forces one tool (mode required)."""

    mode: Literal["auto", "none", "required"] = "auto"
    name: str | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False  # OpenAI's stream_options.include_usage
    json_output: bool = False  # OpenAI response_format json_object, Ollama format=json
    json_schema: dict[str, Any] | None = None  # with json_output: {"name", "schema", "strict"?}
    user: str | None = None  # the caller's end-user id, forwarded for abuse tracking

    def texts(self) -> list[str]:
        """Every piece of text the request would send upstream, system prompt first."""
        out = [self.system] if self.system else []
        for m in self.messages:
            out.extend(p.text for p in m.content if isinstance(p, TextPart))
            out.extend(c.arguments for c in m.tool_calls)
        return out


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False  # True when counted by the gateway, not reported upstream

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResponse:
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None

    def tool_calls_text(self) -> str:
        return "".join(c.arguments for c in self.tool_calls)


# --- streaming -------------------------------------------------------------


@dataclass(slots=True)
class StreamStart:
    """The provider accepted the request; ``input_tokens`` if it says so up front."""

    model: str
    input_tokens: int | None = None


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of tool call ``index``: the first piece has ``id`` and ``name``."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class StreamEnd:
    finish_reason: FinishReason
    usage: Usage | None = None


StreamEvent = StreamStart | TextDelta | ToolCallDelta | StreamEnd


class EventStream:
    """A started stream: its ``StreamStart`` has already arrived.

    The pipeline waits for the first event before answering, so that a provider
    that fails up front still gets a proper HTTP error status rather than a
    200 followed by an in-band error.

    Whoever consumes a stream must call :meth:`aclose` when done, even if it
    never iterated: that releases the upstream connection and runs the
    ``on_close`` callbacks (accounting records abandoned streams there).
    """

    __slots__ = ("_on_close", "events", "start")

    def __init__(
        self,
        start: StreamStart,
        events: AsyncGenerator[StreamEvent, None],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.start = start
        self.events = events
        self._on_close = on_close

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self.events

    async def aclose(self) -> None:
        try:
            await self.events.aclose()
        finally:
            if self._on_close is not None:
                self._on_close()


#: What a provider call gives: the whole answer, or a started stream. (The pipeline's
#: outcomes add the gateway's own: see :mod:`llm_gateway.pipeline.context`.)
Answer = ChatResponse | EventStream
