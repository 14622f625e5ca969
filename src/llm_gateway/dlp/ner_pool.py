"""NER work, scheduled fairly: worker processes, and the queue that feeds them piece by piece.

One worker process analyses one piece of text at a time, and a long prompt
is many pieces. If requests were queued whole, first come first served, two
callers sending 50 KB prompts would hold every worker for seconds and every
other caller's two-line prompt would wait behind them until its budget ran
out. So work is queued per tenant, and within a tenant per caller, and the
workers take one *piece* at a time from each in turn: a small request waits
for at most one piece per worker, whoever else is busy.

A caller may have at most ``caller_chars`` characters waiting; beyond that,
its next request is refused at once (:class:`NerBusy`, a 429 to the caller)
rather than queued to time out. The parent process enforces each request's
time budget: when it passes, the request's pieces still queued are dropped
and the caller is answered (``dlp_unavailable``); the piece a worker is on is
left to finish. A worker that spends longer than ``piece_timeout_s`` on one
piece is killed and replaced: it is not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from llm_gateway.dlp import ner_worker
from llm_gateway.dlp.chunking import chunk_spans
from llm_gateway.dlp.errors import DetectorUnavailable
from llm_gateway.dlp.ner_worker import RawFinding, WorkerInfo

DETECTOR = "ner"
Key = tuple[str, str]  # (tenant, caller)


class NerBusy(DetectorUnavailable):
    """The caller already has as much NER work queued as it may: refuse, do not queue."""

    def __init__(self, queued: int) -> None:
        super().__init__(DETECTOR, f"the caller has {queued} characters waiting for NER")


class WorkerLost(DetectorUnavailable):
    """The worker is gone (it died, or was killed for overrunning): it must be replaced."""


class WorkerDied(WorkerLost):
    def __init__(self) -> None:
        super().__init__(DETECTOR, "a worker process died; restarting")


class WorkerOverran(WorkerLost):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(DETECTOR, f"a worker overran one piece ({timeout_s:g} s); replacing it")


# --- one worker process ----------------------------------------------------------


class WorkerProcess:
    """A spawned worker holding the model, spoken to over a pipe from a thread of its own.

    The thread makes the blocking pipe calls, so the event loop never waits on
    a worker; ``spawn`` gives the worker no copy of the gateway's threads or
    loop. Built with :meth:`start`; a worker that could not start raises.
    """

    def __init__(self, process: BaseProcess, conn: Connection, info: WorkerInfo) -> None:
        self.process = process
        self.conn = conn
        self.info = info
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ner-pipe")

    @classmethod
    async def start(cls, model: str, nice: int, timeout_s: float) -> WorkerProcess:
        """Spawn a worker and wait until it has loaded the model (ModelLoadError if it
        could not, TimeoutError past ``timeout_s``, WorkerDied if it died trying)."""
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=ner_worker.serve, args=(child, model, nice), name="ner-worker", daemon=True
        )
        process.start()
        child.close()
        try:
            kind, payload = await asyncio.to_thread(_receive, parent, timeout_s)
        except BaseException:
            _stop(process, parent)
            raise
        if kind != "ready":
            _stop(process, parent)
            raise ner_worker.ModelLoadError(str(payload))
        return cls(process, parent, payload)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    async def call(self, command: str, text: str | None, timeout_s: float) -> Any:
        """Send one request and wait for its answer; past ``timeout_s`` the worker is killed."""
        loop = asyncio.get_running_loop()
        kind, payload = await loop.run_in_executor(
            self._thread, self._call, (command, text), timeout_s
        )
        if kind != "ok":
            raise DetectorUnavailable(DETECTOR, f"the worker failed: {payload}")
        return payload

    def _call(self, request: ner_worker.Request, timeout_s: float) -> ner_worker.Reply:
        try:
            self.conn.send(request)
            return _receive(self.conn, timeout_s)
        except TimeoutError:
            self.process.kill()  # overran: not waited for; the owner replaces it
            self.process.join()
            raise WorkerOverran(timeout_s) from None

    async def stop(self) -> None:
        await asyncio.to_thread(_stop, self.process, self.conn)
        self._thread.shutdown(wait=False, cancel_futures=True)


def _receive(conn: Connection, timeout_s: float) -> ner_worker.Reply:
    """The worker's next message; TimeoutError past ``timeout_s``, WorkerDied on EOF."""
    try:
        ready = conn.poll(timeout_s)
        reply: ner_worker.Reply = conn.recv() if ready else ("timeout", None)
    except (EOFError, OSError):  # the worker's end of the pipe closed: it died
        raise WorkerDied() from None
    if not ready:
        raise TimeoutError  # (an OSError: raised outside the handler above)
    return reply


def _stop(process: BaseProcess, conn: Connection, grace_s: float = 2.0) -> None:
    with contextlib.suppress(OSError, ValueError):  # already gone
        conn.send(None)
    process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join(grace_s)
    conn.close()


# --- the fair queue --------------------------------------------------------------


@dataclass(slots=True)
class Piece:
    text: int  # which of the job's texts
    offset: int  # where in that text the piece starts
    content: str


@dataclass(eq=False, slots=True)
class Job:
    """One request's NER work: its pieces, and what has come back so far."""

    key: Key
    pieces: deque[Piece]
    results: list[list[RawFinding]]
    done: asyncio.Future[None]
    outstanding: int = 0  # pieces handed out and not answered yet
    chars: int = 0  # characters still queued (for the caller's bound)
    scanned: int = 0  # characters of pieces answered, while the job was waited for

    @classmethod
    def of(cls, key: Key, texts: Sequence[str], piece_chars: int) -> Job:
        pieces = deque(
            Piece(i, start, text[start:end])
            for i, text in enumerate(texts)
            if text.strip()
            for start, end in chunk_spans(text, piece_chars)
        )
        loop = asyncio.get_running_loop()
        job = cls(key, pieces, [[] for _ in texts], loop.create_future())
        job.chars = sum(len(p.content) for p in pieces)
        if not pieces:
            job.done.set_result(None)
        return job

    def answered(self, piece: Piece, found: list[RawFinding]) -> None:
        self.outstanding -= 1
        if self.done.done():
            return  # abandoned: its caller has been answered already
        self.results[piece.text] += [
            (entity, piece.offset + start, piece.offset + end, score)
            for entity, start, end, score in found
        ]
        self.scanned += len(piece.content)
        if not self.pieces and not self.outstanding:
            self.done.set_result(None)

    def close(self) -> None:
        """Stop taking answers: what came back so far is what the caller gets."""
        if not self.done.done():
            self.done.set_result(None)

    def failed(self, error: DetectorUnavailable) -> None:
        self.outstanding -= 1
        if not self.done.done():
            self.done.set_exception(error)


@dataclass(slots=True)
class FairQueue:
    """Jobs by tenant, then by caller; :meth:`next_piece` takes one piece from each in turn."""

    caller_chars: int  # the most characters one caller may have waiting
    _tenants: OrderedDict[str, OrderedDict[str, deque[Job]]] = field(default_factory=OrderedDict)
    _queued: dict[Key, int] = field(default_factory=dict)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, job: Job) -> None:
        """Queue a job; :class:`NerBusy` if its caller would have too much waiting."""
        if job.done.done():
            return
        queued = self._queued.get(job.key, 0)
        if queued and queued + job.chars > self.caller_chars:
            raise NerBusy(queued)
        self._queued[job.key] = queued + job.chars
        tenant, caller = job.key
        self._tenants.setdefault(tenant, OrderedDict()).setdefault(caller, deque()).append(job)
        self._ready.set()

    def drop(self, job: Job) -> None:
        """Take a job's queued pieces out (its budget ran out, or its caller went away)."""
        if job.pieces:
            job.pieces.clear()
            self._release(job)
        tenant, caller = job.key
        callers = self._tenants.get(tenant)
        jobs = callers.get(caller) if callers is not None else None
        if jobs is not None and job in jobs:
            jobs.remove(job)
            self._tidy(tenant, caller)

    async def next_piece(self) -> tuple[Job, Piece]:
        """The next piece to analyse: of the next tenant in turn, its next caller in turn."""
        while not self._tenants:
            self._ready.clear()
            await self._ready.wait()
        tenant, callers = next(iter(self._tenants.items()))
        self._tenants.move_to_end(tenant)
        caller, jobs = next(iter(callers.items()))
        callers.move_to_end(caller)
        job = jobs[0]
        piece = job.pieces.popleft()
        job.outstanding += 1
        job.chars -= len(piece.content)
        self._queued[job.key] -= len(piece.content)
        if not job.pieces:
            jobs.popleft()
            self._tidy(tenant, caller)
        return job, piece

    def _release(self, job: Job) -> None:
        self._queued[job.key] -= job.chars
        job.chars = 0

    def _tidy(self, tenant: str, caller: str) -> None:
        callers = self._tenants[tenant]
        if not callers[caller]:
            del callers[caller]
            if self._queued.get((tenant, caller)) == 0:
                del self._queued[(tenant, caller)]
        if not callers:
            del self._tenants[tenant]
