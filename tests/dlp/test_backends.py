"""Prefilter backends: RE2's Set and Hyperscan give identical findings on the same texts."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from llm_gateway.dlp.backends import BackendError, Re2SetPrefilter, make_prefilter
from llm_gateway.dlp.engine import RuleEngine
from tests.conftest import require_modules
from tests.dlp.samples import (
    ADVERSARIAL,
    HARD_NEGATIVES,
    POSITIVES,
    SECRET_SAMPLES,
    fullwidth,
    rand,
)

SPEC_FILE = Path(__file__).parents[2] / "config" / "dlp_rules.yaml"


@pytest.fixture
def needs_hyperscan() -> None:
    """The RE2 backend is the default and is tested everywhere else; under CI both are."""
    require_modules("hyperscan", extra="hyperscan")


PATTERNS = [r"\bghp_[A-Za-z0-9]{36}\b", r"(?i)passw(?:or)?d", r"\d{3}-\d{2}-\d{4}", "é+"]


def test_the_re2_set_reports_every_pattern_that_matches() -> None:
    prefilter = Re2SetPrefilter(PATTERNS)
    assert sorted(prefilter.matching(b"PASSWD 123-45-6789")) == [1, 2]
    assert sorted(prefilter.matching("caf\u00e9\u00e9".encode())) == [3]
    assert prefilter.matching(b"nothing here") == []


def test_asking_for_hyperscan_without_it_installed_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "hyperscan", None)  # makes "import hyperscan" fail
    with pytest.raises(BackendError, match=r"needs the hyperscan package.*\[hyperscan\]"):
        make_prefilter("hyperscan", PATTERNS)
    with pytest.raises(BackendError, match="hyperscan"):
        RuleEngine.load(None, backend="hyperscan")


@pytest.mark.usefixtures("needs_hyperscan")
def test_hyperscan_reports_the_same_patterns() -> None:
    re2_set, hyperscan = make_prefilter("re2", PATTERNS), make_prefilter("hyperscan", PATTERNS)
    for text in (b"PASSWD 123-45-6789", b"ghp_" + b"a" * 36, b"nothing", "\u00e9".encode()):
        assert set(hyperscan.matching(text)) >= set(re2_set.matching(text)), text


def _corpus() -> list[str]:
    texts = [text for text, _ in SECRET_SAMPLES.values()]
    texts += [text for _, _, text, _ in POSITIVES]
    texts += HARD_NEGATIVES
    texts += [text[:20_000] for text in ADVERSARIAL.values()]
    texts += [
        "my SSN is 219\u200b-09-9988 and card 4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1",
        fullwidth("SSN 219-09-9988") + ", Grüße an jörg@münchen.de, tel +49 30 12345678",
        "ssh to 10.20.30.40 with key sk-" + "Ab1" * 16,
        rand("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_.:@ ", 50_000),
    ]
    # Everything at once, so spans far apart in one text are compared too.
    texts.append("\n".join(texts[:200]))
    return texts


@pytest.fixture(scope="module")
def engines() -> tuple[RuleEngine, RuleEngine]:
    require_modules("hyperscan", extra="hyperscan")
    return (
        RuleEngine.load(SPEC_FILE, backend="re2"),
        RuleEngine.load(SPEC_FILE, backend="hyperscan"),
    )


@pytest.mark.usefixtures("needs_hyperscan")
def test_both_backends_find_identical_spans(engines: tuple[RuleEngine, RuleEngine]) -> None:
    re2_engine, hs_engine = engines
    assert (re2_engine.backend, hs_engine.backend) == ("re2", "hyperscan")
    compared = 0
    for text in _corpus():
        expected = re2_engine.scan(text)
        assert hs_engine.scan(text) == expected, text[:80]
        compared += len(expected)
    assert compared > 250  # the corpus really exercises the rules


@pytest.mark.usefixtures("needs_hyperscan")
def test_hyperscan_scans_from_several_threads(engines: tuple[RuleEngine, RuleEngine]) -> None:
    re2_engine, hs_engine = engines
    texts = [text for text, _ in SECRET_SAMPLES.values()]
    expected = [re2_engine.scan(text) for text in texts]
    results: dict[int, list[object]] = {}

    def work(worker: int) -> None:
        results[worker] = [hs_engine.scan(text) for text in texts]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[i] == expected for i in range(4))


@pytest.mark.usefixtures("needs_hyperscan")
def test_patterns_hyperscan_cannot_take_are_always_checked_by_re2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: word\n    pattern: '\\bmot\u00e9\\b|caf\u00e9'\n")
    re2_engine = RuleEngine.load(rules, enable_pii=False, enable_secrets=False)
    hs_engine = RuleEngine.load(rules, enable_pii=False, enable_secrets=False, backend="hyperscan")
    text = "un caf\u00e9 et un mot\u00e9"
    assert hs_engine.scan(text) == re2_engine.scan(text) != []
