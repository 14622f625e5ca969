"""A server's graceful shutdown, as the work still in flight sees it.

This is a low layer (it imports nothing of the gateway's), because the HTTP
server (``server.py``), the wiring (``runtime.py``) and the streamed answers
(``api/http.py``) all hold the same :class:`Drain`: the lifespan puts it in
the server's state under :data:`DRAIN`, the protocol begins it, the streams
wait on it.
"""

from __future__ import annotations

import asyncio

#: The lifespan state's key for the server's :class:`Drain` (read by the HTTP protocol).
DRAIN = "llm_gateway.drain"


class Drain:
    """A server's graceful shutdown, as its streams see it.

    The HTTP protocol calls :meth:`begin` when its server starts to stop
    (SIGTERM). The server then lets requests finish for ``grace_s`` seconds
    and cancels what is left, which would end a long stream mid-word, with no
    error event and recorded as if the client had gone. So a stream still
    running shortly before the grace ends (:meth:`cut_at`: a fifth of the
    grace before, at most a second) is ended by the gateway: the format's
    error event, ``server_shutdown``, and an audit row that says so.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._began = asyncio.Event()

    def begin(self) -> None:
        self._began.set()

    async def cut_at(self) -> None:
        """Return when a stream still running must be ended."""
        await self._began.wait()
        await asyncio.sleep(self.grace_s - min(1.0, self.grace_s / 5))
