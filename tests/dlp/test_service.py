"""The DLP service: the policy's mode replaces the default action, never a rule's own."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from llm_gateway.dlp.findings import Action
from llm_gateway.dlp.ner import NerConfig, NerDetector
from llm_gateway.dlp.service import DlpService, require_complete
from llm_gateway.errors import DlpUnavailable
from llm_gateway.settings import load_settings
from llm_gateway.state.redis import RedisStore
from tests.dlp.samples import ALNUM, rand
from tests.dlp.test_ner import require_ner_extra
from tests.state.cases import ClosedCount

REPO = Path(__file__).resolve().parents[2]
TEXT = "mail bob.smith@example.com, key sk-" + rand(ALNUM, 40) + ", host 10.1.2.3"


async def _service(tmp_path: Path) -> DlpService:
    settings = load_settings(
        {
            "DLP_NER": "off",
            "DATA_DIR": str(tmp_path),
            "DLP_RULES_FILE": str(REPO / "config" / "dlp_rules.yaml"),
        },
        env_file=None,
    )
    return await DlpService.start(settings.dlp, settings.state)


async def test_the_policy_mode_changes_only_default_actions(tmp_path: Path) -> None:
    dlp = await _service(tmp_path)
    try:
        default = {f.rule: f.action for f in dlp.scan_rules(TEXT)}
        alerted = {f.rule: f.action for f in dlp.scan_rules(TEXT, Action.ALERT)}
    finally:
        await dlp.aclose()
    email = next(rule for rule in default if "email" in rule)
    assert default[email] is Action.REDACT  # DLP_MODE's default
    assert alerted[email] is Action.ALERT  # the policy's dlp_mode for this caller
    assert alerted["api_key"] is Action.BLOCK  # the rule says block: the policy cannot relax it
    assert alerted["internal_ip"] is Action.ALERT


async def test_a_text_over_the_ner_size_cap_is_read_in_part_and_says_so(tmp_path: Path) -> None:
    """DLP_NER_MAX_CHARS bounds what NER reads; it never refuses the request, nor hides it."""
    require_ner_extra()
    settings = load_settings(
        {"DLP_NER": "on", "DLP_NER_MAX_CHARS": "100", "DATA_DIR": str(tmp_path)},
        env_file=None,
    )
    dlp = await DlpService.start(settings.dlp, settings.state)
    try:
        small = "John Smith lives in Paris."
        named = await dlp.scan([small])
        large_text = small + " filler" * 40 + " mail bob.smith@example.com, ask Maria Garcia."
        large = await dlp.scan([large_text])
    finally:
        await dlp.aclose()
    assert {f.entity for f in named.findings[0]} >= {"PERSON"}
    assert str(named.ner) == "full"
    (found,) = large.findings
    assert {f.entity for f in found} >= {"PERSON", "EMAIL_ADDRESS"}
    assert all(f.start < 100 for f in found if f.entity == "PERSON")  # the tail went unread
    assert str(large.ner) == "partial (size cap)"
    assert large.ner.scanned_chars <= 100 < large.ner.total_chars == len(large_text)


async def test_the_vault_lives_in_the_store_it_is_given(tmp_path: Path) -> None:
    store = ClosedCount()
    settings = load_settings(
        {"DLP_NER": "off", "DATA_DIR": str(tmp_path), "DLP_VAULT_TTL": "120"}, env_file=None
    )
    dlp = await DlpService.start(settings.dlp, settings.state, store)
    await dlp.vault.session("t:u:c1").token_for("SSN", "219-09-9999")
    await dlp.aclose()  # the gateway's store: not the DLP service's to close
    assert store.closed == 0
    assert await store.hash_get("vault:t:u:c1", ["count"]) == [b"1"]
    ttl = await store.ttl("vault:t:u:c1")
    assert ttl is not None
    assert 0 < ttl <= 120


@pytest.mark.redis
async def test_dlp_vault_redis_still_opens_a_store_of_its_own(
    tmp_path: Path, redis_server_url: str
) -> None:
    settings = load_settings(
        {
            "DLP_NER": "off",
            "DATA_DIR": str(tmp_path),
            "DLP_VAULT": "redis",
            "DLP_VAULT_KEY": base64.b64encode(bytes(range(32))).decode(),
            "REDIS_URL": redis_server_url,
        },
        env_file=None,
    )
    dlp = await DlpService.start(settings.dlp, settings.state)
    conversation = f"test-{uuid.uuid4().hex}"
    try:
        assert isinstance(dlp.vault.store, RedisStore)
        assert dlp.vault.store.prefix == "llmgw:vault:"
        assert await dlp.vault.session(conversation).token_for("PERSON", "Ada") == "<PERSON_1>"
        assert await dlp.vault.store.ttl(conversation) is not None
    finally:
        await dlp.vault.store.delete(conversation)
        await dlp.aclose()


async def test_a_request_over_the_ner_budget_passes_with_what_was_read(tmp_path: Path) -> None:
    """No 503 for a budget that ran out: the rules' findings apply, NER says it was cut."""
    require_ner_extra()
    env = {
        "DLP_NER": "on",
        "DLP_NER_TIMEOUT_MS": "1",
        "DLP_NER_TIMEOUT_PER_KCHAR_MS": "0",
        "DLP_NER_ALL_CAPS": "true",
        "DATA_DIR": str(tmp_path),
    }
    settings = load_settings(env, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    text = "John Smith lives in Paris. " * 400 + "mail bob.smith@example.com"
    try:
        scan = await dlp.scan([text])
    finally:
        await dlp.aclose()
    assert dlp.ner is not None
    assert dlp.ner.config.budget_s(len(text)) == pytest.approx(0.001)
    assert dlp.ner.config.all_caps  # DLP_NER_ALL_CAPS reaches the detector
    assert "EMAIL_ADDRESS" in {f.entity for f in scan.findings[0]}
    assert scan.ner.state in ("partial", "skipped")
    assert scan.ner.reason == "time budget"
    assert scan.ner.total_chars == len(text)


async def test_ner_that_cannot_run_says_why(tmp_path: Path) -> None:
    settings = load_settings({"DLP_NER": "off", "DATA_DIR": str(tmp_path)}, env_file=None)
    dlp = await DlpService.start(settings.dlp, settings.state)
    try:
        off = await dlp.scan(["John Smith"])
        dlp.ner = NerDetector(NerConfig(model="no_such_model_package"))
        await dlp.ner._start()  # as NerDetector.start does, without its warning
        missing = await dlp.scan(["John Smith", "key=1"], prose=[True, False])
        refused = await dlp.scan(["John Smith"], ner=False)
    finally:
        await dlp.aclose()
    assert str(off.ner) == "off"
    assert str(missing.ner) in ("skipped (model not installed)", "skipped (extra not installed)")
    assert missing.ner.total_chars == len("John Smith")  # only the prose NER would read
    assert str(refused.ner) == "off"
    with pytest.raises(DlpUnavailable, match=r"ner: skipped \("):
        require_complete(missing.ner)
    require_complete(off.ner)  # NER not wanted: nothing went unread
