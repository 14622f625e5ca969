"""The code that runs inside an NER worker process, never in the gateway's.

A worker process (:func:`serve`) loads Presidio and the spaCy model once,
says it is ready, then answers one request at a time over its pipe: a piece
of text to analyse, or a question about itself. The gateway cuts texts into
pieces and schedules them (:mod:`llm_gateway.dlp.ner_pool`); results travel
back as tuples, and the gateway builds its findings.

Nothing heavy is imported at module level: the gateway imports this module
only to name these functions to the pool, and must not pay for spaCy itself.

The worker configures Presidio explicitly: an NLP engine over the already
loaded pipeline (a default ``AnalyzerEngine()`` would try to download a model)
and a registry holding only the spaCy NER recognizer, for PERSON, LOCATION and
NRP. Pattern recognizers are left out: the rule engine does that work.
"""

from __future__ import annotations

import os
import re
import resource
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpEngine
    from spacy.language import Language

# Set before Presidio or tldextract is imported: an empty list of public
# suffix list URLs makes tldextract use its bundled snapshot, never the network.
# One thread for the numeric libraries: a worker is one core's worth of work.
WORKER_ENVIRONMENT = {
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# spaCy's labels for the entities we report, under Presidio's names.
SPACY_TO_PRESIDIO = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "NORP": "NRP"}
ENTITIES = ("PERSON", "LOCATION", "NRP")
LANGUAGE = "en"
# The pipes NER can need: ``ner`` itself, and ``tok2vec`` when ``ner`` listens to it.
_NER_PIPES = ("tok2vec", "ner")

RawFinding = tuple[str, int, int, float]  # entity, start, end, score

# spaCy's tokenizer peels prefixes, suffixes and infixes off a token one at a
# time, so a long run of punctuation ("((((...", "-a-a-a...") costs time
# quadratic in its length: seconds for a few kilobytes. No name is hidden in a
# run of 65 or more non-space characters, so in such a run every non-word
# character becomes a space (same length, so offsets are unchanged).
_LONG_RUN = re.compile(r"\S{65,}")
_NOT_WORD = re.compile(r"\W")


class ModelLoadError(Exception):
    """The worker could not load Presidio or the model; the message says why."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a warmed-up worker reports about itself."""

    pid: int
    rss_bytes: int
    pipes: tuple[str, ...]
    load_seconds: float


@dataclass(frozen=True, slots=True)
class _Loaded:
    analyzer: AnalyzerEngine
    pipes: tuple[str, ...]
    load_seconds: float


# This process's one analyzer (or why there is none): module state, in a
# process that exists for nothing else.
_worker: _Loaded | ModelLoadError | None = None


def initialize(model: str, nice: int = 0) -> None:
    """Load the model once for the life of this process.

    ``nice`` lowers this process's CPU priority, so that on a busy host the
    gateway's event loop is scheduled before a long NER scan.

    A failure is kept, not raised, and reported to the gateway as such, so
    that it learns why the model did not load, not only that a process died.
    """
    global _worker
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    started = time.perf_counter()
    try:
        analyzer, pipes = _build_analyzer(model)
    except Exception as exc:  # noqa: BLE001 - the process boundary: reported to the gateway
        _worker = ModelLoadError(f"cannot load NER model {model!r}: {type(exc).__name__}: {exc}")
        return
    _worker = _Loaded(analyzer, pipes, time.perf_counter() - started)


def warm_up() -> WorkerInfo:
    """Run the model once (its first call is slower) and report on this worker."""
    loaded = _loaded()
    loaded.analyzer.analyze(text="Ada Lovelace was born in London.", language=LANGUAGE)
    return WorkerInfo(os.getpid(), rss_bytes(), loaded.pipes, loaded.load_seconds)


def analyze(text: str) -> list[RawFinding]:
    """PERSON, LOCATION and NRP spans in one piece of text, as offsets into it."""
    analyzer = _loaded().analyzer
    return [
        (str(result.entity_type), result.start, result.end, result.score)
        for result in analyzer.analyze(
            text=defuse_long_runs(text), language=LANGUAGE, entities=list(ENTITIES)
        )
    ]


# What the gateway sends: ("analyze", text), ("rss", None), or None to stop.
# What a worker answers: ("ready", WorkerInfo) once, then ("ok", result) or
# ("error", message) per request.
Request = tuple[str, str | None] | None
Reply = tuple[str, Any]


def serve(conn: Connection, model: str, nice: int) -> None:
    """A worker process's life: load the model, say so, answer until told to stop."""
    initialize(model, nice)
    try:
        conn.send(("ready", warm_up()))
    except ModelLoadError as exc:
        conn.send(("error", str(exc)))
        return
    while True:
        try:
            request: Request = conn.recv()
        except (EOFError, OSError):  # the gateway went away
            return
        if request is None:
            return
        command, text = request
        try:
            reply: Reply = ("ok", analyze(text or "") if command == "analyze" else rss_bytes())
        except Exception as exc:  # noqa: BLE001 - the process boundary: reported to the gateway
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


def defuse_long_runs(text: str) -> str:
    """``text`` with punctuation in very long unbroken runs turned into spaces.

    Keeps the tokenizer linear (see ``_LONG_RUN``); the result has the same
    length, so every offset into it is an offset into ``text``.
    """
    return _LONG_RUN.sub(lambda run: _NOT_WORD.sub(" ", run.group()), text)


def rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _loaded() -> _Loaded:
    if isinstance(_worker, _Loaded):
        return _worker
    if _worker is None:
        raise ModelLoadError("the NER worker was not initialised")
    raise ModelLoadError(str(_worker))


def _build_analyzer(model: str) -> tuple[AnalyzerEngine, tuple[str, ...]]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    nlp_engine, pipes = spacy_nlp_engine(model)
    registry = RecognizerRegistry(
        recognizers=[SpacyRecognizer(supported_language=LANGUAGE, supported_entities=[*ENTITIES])],
        supported_languages=[LANGUAGE],
    )
    analyzer = AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE]
    )
    return analyzer, pipes


def spacy_nlp_engine(model: str) -> tuple[NlpEngine, tuple[str, ...]]:
    """Presidio's spaCy NLP engine over ``model``, and the pipes it runs.

    The model's labels are mapped to Presidio's names for the entities we
    report; every other label (ORG, DATE, MONEY...) is ignored by name, so
    Presidio neither reports it nor logs a warning per unmapped entity.
    """
    from presidio_analyzer.nlp_engine import NerModelConfiguration

    nlp = load_pipeline(model)
    labels: tuple[str, ...] = tuple(nlp.get_pipe("ner").labels)  # type: ignore[attr-defined]
    ner_config = NerModelConfiguration(
        model_to_presidio_entity_mapping=dict(SPACY_TO_PRESIDIO),
        labels_to_ignore=[label for label in labels if label not in SPACY_TO_PRESIDIO],
    )
    return preloaded_nlp_engine(nlp, ner_config), tuple(nlp.pipe_names)


def load_pipeline(model: str) -> Language:
    """The installed model package's pipeline with only what NER needs loaded.

    Every other component (tagger, parser, lemmatizer...) is excluded, not
    just disabled, so it costs neither time nor memory. The shared ``tok2vec``
    goes too when ``ner`` embeds its own (the small English model does): it
    would run on every text for nothing.
    """
    import spacy

    package = spacy.util.get_package_path(model)
    components = spacy.util.get_model_meta(package)["components"]
    nlp = spacy.load(model, exclude=[name for name in components if name not in _NER_PIPES])
    if "tok2vec" in nlp.pipe_names and not _ner_listens_to_tok2vec(nlp):
        nlp.remove_pipe("tok2vec")
    return nlp


def _ner_listens_to_tok2vec(nlp: Language) -> bool:
    embedding: dict[str, Any] = nlp.config["components"]["ner"]["model"].get("tok2vec", {})
    return str(embedding.get("@architectures", "")).startswith("spacy.Tok2VecListener")


def preloaded_nlp_engine(nlp: Language, ner_config: NerModelConfiguration) -> NlpEngine:
    """A Presidio spaCy NLP engine over a pipeline we loaded ourselves.

    Presidio's own ``load()`` calls ``spacy.load(name)`` with every component,
    and downloads the model when the name is not an installed package; this
    engine's ``load()`` only hands over the pipeline it was given.
    """
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class PreloadedSpacyNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            # Presidio declares ``nlp`` as None until loaded, then fills this dict.
            self.nlp = {LANGUAGE: nlp}  # type: ignore[assignment]

    engine = PreloadedSpacyNlpEngine(
        models=[{"lang_code": LANGUAGE, "model_name": str(nlp.path or nlp.meta["name"])}],
        ner_model_configuration=ner_config,
    )
    engine.load()
    return engine
