"""What the DLP stage costs: the rule engine by prompt size, its throughput, and NER.

``dlp_stage_costs()`` returns ``(name, value)`` rows, the unit in each name:
median microseconds per scan for the rule engine on 200 B, 2 KB and 20 KB
prompts, megabytes per second on 1 MB of mostly clean text, the slowest of
the texts crafted to be slow, and the NER detector's start and its cost on a
2 KB prompt (through its worker process, as the gateway calls it) with its
worker's resident memory. It is synchronous and runs its own
event loop for NER: call it outside a running loop.

    .venv/bin/python bench/dlp_speed.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from faker import Faker  # noqa: E402

from bench.dlp_corpus import build_corpus  # noqa: E402
from bench.dlp_values import CRAFTED_SLOW  # noqa: E402

SEED = 7
Row = tuple[str, float]


def prompt(size: int, *, pii_every: int = 1, seed: int = SEED) -> str:
    """About ``size`` characters of English prose; every ``pii_every``-th line carries PII.

    The PII lines are the labelled corpus's sentences, so a prompt holds the
    same values the evaluation scores (cards, SSNs, emails, phones, IBANs...).
    """
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    with_pii = _pii_lines()
    lines: list[str] = []
    length = 0
    while length < size:
        line = rng.choice(with_pii) if len(lines) % pii_every == 0 else fake.paragraph(5)
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)[:size]


@cache
def _pii_lines() -> list[str]:
    return [s.text for s in build_corpus() if s.kind == "positive"]


def median_us(fn: Callable[[], object], runs: int) -> float:
    for _ in range(min(runs, 50)):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def rule_engine_costs() -> list[Row]:
    from llm_gateway.dlp.engine import RuleEngine

    engine = RuleEngine.load(None)
    rows: list[Row] = []
    for label, size, runs in (("200 B", 200, 5000), ("2 KB", 2048, 2000), ("20 KB", 20480, 300)):
        text = prompt(size, pii_every=8)  # opens with PII, then one line in eight
        cost = median_us(partial(engine.scan, text), runs)
        rows.append((f"DLP rules, {label} prompt with PII (median µs)", cost))
    clean = prompt(1 << 20, pii_every=200)  # one PII line in 200: mostly clean text
    seconds = median_us(lambda: engine.scan(clean), 7) / 1e6
    rows.append(("DLP rules, 1 MB mostly clean text (MB/s)", len(clean.encode()) / 1e6 / seconds))
    return rows


def crafted_text_costs() -> list[Row]:
    from llm_gateway.dlp.engine import RuleEngine

    engine = RuleEngine.load(None)
    worst = max(median_us(partial(engine.scan, text), 1) for text in CRAFTED_SLOW.values())
    return [("DLP rules, slowest crafted ~500 KB text (median ms)", worst / 1000)]


async def _ner_costs() -> list[Row]:
    from llm_gateway.dlp.findings import Action, Severity
    from llm_gateway.dlp.ner import NerDetector

    started = time.perf_counter()
    detector = await NerDetector.start()
    start_s = time.perf_counter() - started
    if not detector.available:
        return []
    try:
        text = prompt(2048, pii_every=8)

        async def scan() -> None:
            await detector.scan(text, action=Action.REDACT, severity=Severity.HIGH)

        for _ in range(5):
            await scan()
        samples = []
        for _ in range(40):
            start = time.perf_counter_ns()
            await scan()
            samples.append((time.perf_counter_ns() - start) / 1000)
        rss = await detector.worker_rss_bytes()
    finally:
        await detector.aclose()
    return [
        ("NER detector start, worker spawned and model loaded (s)", start_s),
        ("NER, 2 KB prompt with PII, via the worker (median µs)", statistics.median(samples)),
        ("NER worker resident memory, model loaded (MB)", rss / 2**20),
    ]


def dlp_stage_costs() -> list[Row]:
    """The rows described in the module docstring; NER rows only when NER is available."""
    return rule_engine_costs() + crafted_text_costs() + asyncio.run(_ner_costs())


if __name__ == "__main__":
    print("| DLP stage | value |\n|---|---:|")
    for name, value in dlp_stage_costs():
        print(f"| {name} | {value:,.1f} |")
