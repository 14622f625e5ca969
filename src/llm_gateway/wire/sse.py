"""Server-sent events, both ways: parse a provider's stream, format our own.

The front doors write SSE to clients and the OpenAI and Anthropic adapters read
it from upstreams, so the framing is part of the wire layer, not of either side.

Only what the providers use is implemented: ``event`` and ``data`` fields,
multi-line data, comments and blank-line dispatch (WHATWG HTML, section 9.2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEvent:
    event: str
    data: str


async def parse_sse(lines: AsyncIterator[bytes]) -> AsyncIterator[SSEvent]:
    event = ""
    data: list[str] = []
    async for raw in lines:
        if not raw:
            if data:
                yield SSEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:  # a stream cut before its final blank line still delivers what it sent
        yield SSEvent(event or "message", "\n".join(data))


def sse(data: bytes, event: str | None = None) -> bytes:
    """One event in wire form; ``data`` must not contain newlines (JSON from orjson never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
