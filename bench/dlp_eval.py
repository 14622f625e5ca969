"""Labelled DLP evaluation: our rule engine and Presidio, side by side on the same texts.

    .venv/bin/python bench/dlp_eval.py [--errors] [--secrets]

Prints a markdown table: precision, recall and F1 per entity for both, the
share of hard negatives on which each reports anything, and the median scan
time per text. ``--errors`` also lists every miss and false positive.
``--secrets`` instead scores our engine alone on the generated secrets corpus
(``dlp_secrets_corpus``): recall per provider, placeholders blocked (must be
none) and hard negatives flagged.

Scoring is entity-level: a predicted span is a true positive when it overlaps
a gold span of the same entity; a gold span is found when some prediction of
its entity overlaps it. Only the compared entities count; whatever else an
engine reports (secrets, dates of birth, names) is ignored here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.dlp_corpus import ENTITIES, Sample, build_corpus  # noqa: E402
from bench.presidio_baseline import MODEL, Prediction, PresidioBaseline  # noqa: E402


@dataclass
class Tally:
    gold: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Result:
    """One engine's scores over the corpus."""

    name: str
    tallies: dict[str, Tally] = field(default_factory=lambda: {e: Tally() for e in ENTITIES})
    negatives: int = 0
    negatives_flagged: int = 0
    seconds: list[float] = field(default_factory=list)
    extra_seconds: list[float] = field(default_factory=list)  # Presidio: recognizers alone
    errors: list[str] = field(default_factory=list)

    @property
    def false_positive_rate(self) -> float:
        return self.negatives_flagged / self.negatives if self.negatives else 0.0


def evaluate(
    name: str, corpus: Iterable[Sample], scan: Callable[[str], tuple[list[Prediction], float]]
) -> Result:
    result = Result(name)
    for sample in corpus:
        predictions, seconds = scan(sample.text)
        result.seconds.append(seconds)
        score_sample(result, sample, [p for p in predictions if p[0] in ENTITIES])
    return result


def score_sample(result: Result, sample: Sample, predictions: list[Prediction]) -> None:
    def overlaps(p: Prediction, start: int, end: int) -> bool:
        return p[1] < end and start < p[2]

    for span in sample.spans:
        tally = result.tallies[span.entity]
        tally.gold += 1
        if any(p[0] == span.entity and overlaps(p, span.start, span.end) for p in predictions):
            tally.found += 1
        else:
            result.errors.append(f"miss {span.entity}: {span.value!r} in {sample.text!r}")
    for p in predictions:
        tally = result.tallies[p[0]]
        tally.predicted += 1
        if any(s.entity == p[0] and overlaps(p, s.start, s.end) for s in sample.spans):
            tally.correct += 1
        else:
            value = sample.text[p[1] : p[2]]
            result.errors.append(f"false {p[0]}: {value!r} in {sample.text!r}")
    if sample.kind == "negative":
        result.negatives += 1
        result.negatives_flagged += bool(predictions)


# --- the two engines ------------------------------------------------------------------


def our_scanner() -> Callable[[str], tuple[list[Prediction], float]]:
    from llm_gateway.dlp.engine import RuleEngine

    engine = RuleEngine.load(None)

    def scan(text: str) -> tuple[list[Prediction], float]:
        start = time.perf_counter()
        findings = engine.scan(text)
        seconds = time.perf_counter() - start
        return [(f.entity, f.start, f.end) for f in findings], seconds

    return scan


def presidio_scanner(extra: list[float]) -> Callable[[str], tuple[list[Prediction], float]]:
    baseline = PresidioBaseline(ENTITIES)

    def scan(text: str) -> tuple[list[Prediction], float]:
        timed = baseline.scan(text)
        extra.append(timed.recognizer_seconds)
        return timed.predictions, timed.nlp_seconds + timed.recognizer_seconds

    return scan


# --- report ---------------------------------------------------------------------------


def table(ours: Result, presidio: Result) -> str:
    lines = [
        f"| entity | gold | {ours.name} P | {ours.name} R | {ours.name} F1 "
        f"| {presidio.name} P | {presidio.name} R | {presidio.name} F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entity in ENTITIES:
        a, b = ours.tallies[entity], presidio.tallies[entity]
        lines.append(
            f"| {entity} | {a.gold} | {a.precision:.3f} | {a.recall:.3f} | {a.f1:.3f} "
            f"| {b.precision:.3f} | {b.recall:.3f} | {b.f1:.3f} |"
        )
    lines += [
        "",
        f"| measure | {ours.name} | {presidio.name} |",
        "|---|---:|---:|",
        f"| hard negatives with a false positive | {_rate(ours)} | {_rate(presidio)} |",
        f"| median scan time per text | {_ms(ours.seconds)} | {_ms(presidio.seconds)} |",
    ]
    if presidio.extra_seconds:
        lines.append(
            f"| median, {presidio.name} recognizers alone (spaCy excluded) | "
            f"| {_ms(presidio.extra_seconds)} |"
        )
    return "\n".join(lines)


def _rate(result: Result) -> str:
    share = 100 * result.false_positive_rate
    return f"{result.negatives_flagged}/{result.negatives} ({share:.1f}%)"


def _ms(seconds: list[float]) -> str:
    median = statistics.median(seconds) * 1000 if seconds else float("nan")
    return f"{median:.3f} ms"


def secrets_table(errors: bool) -> str:
    """Our engine on the generated secrets corpus: a finding that blocks and covers the
    value counts as found; a placeholder must never block; a negative must raise nothing."""
    from bench.dlp_secrets_corpus import build_secrets_corpus
    from llm_gateway.dlp.engine import RuleEngine
    from llm_gateway.dlp.findings import Action

    engine = RuleEngine.load(None)
    found: dict[str, list[int]] = {}
    lines: list[str] = []
    blocked_placeholders = flagged_negatives = placeholders = negatives = 0
    for sample in build_secrets_corpus():
        findings = engine.scan(sample.text)
        if sample.kind == "negative":
            negatives += 1
            hit = any(f.category == "secret" for f in findings)
            flagged_negatives += hit
            if hit and errors:
                lines.append(f"- false: {sample.text!r}")
            continue
        start = sample.text.find(sample.value)
        end = start + len(sample.value)
        blocks = [f for f in findings if f.action is Action.BLOCK]
        if sample.kind == "placeholder":
            placeholders += 1
            blocked_placeholders += any(f.start < end and f.end > start for f in blocks)
            continue
        ok = any(f.start <= start and f.end >= end for f in blocks)
        tally = found.setdefault(sample.provider, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok and errors:
            lines.append(f"- miss {sample.provider}: {sample.text!r}")
    table = ["| provider | found | recall |", "|---|---:|---:|"]
    table += [f"| {p} | {a}/{n} | {a / n:.2f} |" for p, (a, n) in sorted(found.items())]
    total = sum(a for a, _ in found.values()), sum(n for _, n in found.values())
    table += [
        f"| **all** | {total[0]}/{total[1]} | {total[0] / total[1]:.3f} |",
        "",
        f"Placeholders blocked: {blocked_placeholders}/{placeholders}. "
        f"Hard negatives with a secret finding: {flagged_negatives}/{negatives}. "
        "All figures on data we generated (bench/dlp_secrets_corpus.py).",
    ]
    return "\n".join(table + lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--errors", action="store_true", help="list misses and false positives")
    parser.add_argument("--secrets", action="store_true", help="the generated secrets corpus")
    args = parser.parse_args(argv)
    if args.secrets:
        print(secrets_table(args.errors))
        return 0

    corpus = build_corpus()
    positives = sum(s.kind == "positive" for s in corpus)
    ours = evaluate("ours", corpus, our_scanner())
    presidio_extra: list[float] = []
    presidio = evaluate("Presidio", corpus, presidio_scanner(presidio_extra))
    presidio.extra_seconds = presidio_extra

    print(
        f"Corpus: {len(corpus)} texts ({positives} with PII, {len(corpus) - positives} hard "
        f"negatives), {sum(len(s.spans) for s in corpus)} gold spans. Presidio: "
        f"presidio-analyzer {version('presidio-analyzer')}, its recognizers for these "
        f"entities, spaCy {MODEL} (ner only), default score threshold (0).\n"
    )
    print(table(ours, presidio))
    if args.errors:
        for result in (ours, presidio):
            print(f"\n## {result.name}: {len(result.errors)} errors\n")
            print("\n".join(f"- {line}" for line in result.errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
