"""Streamed answers: nothing is released before it is scanned, whatever the chunking."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action
from llm_gateway.dlp.outbound import RELEASE_STEP, HeldText, redact_with_markers
from llm_gateway.dlp.prefixes import literal_prefixes
from llm_gateway.dlp.service import secret_starts
from tests.dlp.samples import B64, rand

ENGINE = RuleEngine.load(None, default_action=Action.REDACT)
SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # a GitHub token's shape
ANSWER = f"Sure. Use the token {SECRET} in the header, and mail bob.smith@example.com after."


def _stream(text: str, sizes: list[int], holdback: int) -> tuple[list[str], HeldText]:
    held = HeldText(ENGINE.scan, holdback)
    released, at = [], 0
    for size in sizes:
        released.append(held.feed(text[at : at + size]))
        at += size
    released.append(held.feed(text[at:]))
    released.append(held.finish())
    return released, held


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 16, 40])
def test_a_secret_split_across_chunks_never_leaves(chunk: int) -> None:
    released, held = _stream(ANSWER, [chunk] * (len(ANSWER) // chunk), holdback=64)
    joined = "".join(released)
    assert SECRET not in joined
    assert SECRET[:12] not in joined
    assert "bob.smith@example.com" not in joined
    assert joined.startswith("Sure. Use the token <")
    assert joined.endswith(" after.")
    assert {f.entity for f in held.findings} >= {"EMAIL_ADDRESS"}
    assert len(held.findings) == 2


def test_every_split_point_of_the_secret() -> None:
    start = ANSWER.index(SECRET)
    for cut in range(start, start + len(SECRET) + 1):
        released, _ = _stream(ANSWER, [cut], holdback=64)
        assert SECRET[:8] not in "".join(released), cut


def test_the_hold_back_is_bounded() -> None:
    """Clean text is released as soon as it is more than ``holdback`` characters old."""
    held = HeldText(ENGINE.scan, 16)
    text = "plain words " * 20
    out = held.feed(text)
    assert len(out) == len(text) - 16
    assert held.finish() == text[-16:]


def test_without_hold_back_each_chunk_is_still_scanned() -> None:
    held = HeldText(ENGINE.scan, 0)
    out = held.feed(f"the token is {SECRET} ok")
    assert SECRET not in out
    assert held.findings


def test_alert_findings_pass_unchanged() -> None:
    findings = [replace(f, action=Action.ALERT) for f in ENGINE.scan(ANSWER)]
    assert redact_with_markers(ANSWER, findings) == ANSWER


def test_block_is_reported() -> None:
    engine = RuleEngine.load(None, default_action=Action.BLOCK)
    held = HeldText(engine.scan, 8)
    held.feed(ANSWER)
    held.finish()
    assert held.blocked


# --- secrets longer than the hold-back ------------------------------------------

STARTS = secret_starts(ENGINE, cap=8192)
# Formats longer than the hold-back, whose rules match only once the key is whole.
LONG_SECRETS = {
    "xai": "xai-" + ("Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4" * 3)[:80],
    "slack_config": "xoxe.xoxp-1-" + ("ZQ7XW2LM9KP4RT6YV1BN3HJ8DF5GS0AC2EE4" * 5)[:160],
    "openai_project": "sk-proj-" + ("Zq7Xw2Lm9Kp4Rt6Yv1Bn3Hj8Df5Gs0Ac2Ee4_-" * 3)[:100],
}
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join("MIIEowIBAAKCAQEA7Zq" + rand(B64, 45) for _ in range(20))
    + "\n-----END RSA PRIVATE KEY-----"
)


def _held_stream(text: str, chunk: int, holdback: int = 64) -> tuple[str, HeldText]:
    held = HeldText(ENGINE.scan, holdback, STARTS)
    out = [held.feed(text[i : i + chunk]) for i in range(0, len(text), chunk)]
    out.append(held.finish())
    return "".join(out), held


def test_the_starts_come_from_the_rules_patterns() -> None:
    assert literal_prefixes(r"\bghp_[A-Za-z0-9]{36}\b") == ("ghp_",)
    assert literal_prefixes(r"\b(?:AKIA|ASIA|A3T[A-Z0-9])[A-Z0-9]{16}\b") == (
        "AKIA",
        "ASIA",
        "A3T",
    )
    assert literal_prefixes(r"https://hooks\.slack\.com/x") == ("https://hooks.slack.com/x",)
    assert literal_prefixes(r"sk-?[a-z]+") == ()  # "sk" alone is too short to hold on
    assert literal_prefixes(r"(?i)\bpassword") == ()
    assert literal_prefixes(r"(?:^|[^A-Z])(?P<value>[A-Z]{40})") == ()
    assert {"xai-", "sk-", "AKIA", "ghp_"} <= set(STARTS.prefixes)


@pytest.mark.parametrize("name", LONG_SECRETS)
@pytest.mark.parametrize(
    ("chunk", "holdback"),
    [(1, 16), (4, 16), (9, 16), (33, 16), (1, 64), (4, 64), (9, 64), (33, 64)],
)
def test_a_secret_longer_than_the_hold_back_never_partly_leaves(
    name: str, chunk: int, holdback: int
) -> None:
    secret = LONG_SECRETS[name]
    assert len(secret) > 80
    assert ENGINE.scan(secret), "the rule must recognise the whole key"
    text = f"Here is the key you asked for: {secret} and that is all."
    released, held = _held_stream(text, chunk, holdback)
    assert secret[:6] not in released
    assert released.startswith("Here is the key you asked for: <")
    assert released.endswith(" and that is all.")
    assert held.findings


def test_without_the_starts_a_long_secret_leaks_its_head() -> None:
    """What the starts are for: the plain hold-back releases the head of a long key."""
    secret = LONG_SECRETS["xai"]
    held = HeldText(ENGINE.scan, 64)
    # Not after a credential name: "key: " would let the generic rules catch the head.
    text = f"this: {secret} done"
    released = "".join([held.feed(text[i : i + 4]) for i in range(0, len(text), 4)])
    assert secret[:6] in released + held.finish()


def test_a_private_key_in_armour_never_partly_leaves() -> None:
    text = f"The key:\n{PEM}\nKeep it safe."
    released, held = _held_stream(text, 7)
    assert "MIIEowIBAAKCAQEA" not in released
    assert "-----BEGIN" not in released
    assert released.endswith("Keep it safe.")
    assert held.findings


def test_the_hold_is_capped() -> None:
    """A start followed by an endless token run holds at most ``cap`` characters."""
    held = HeldText(ENGINE.scan, 16, secret_starts(ENGINE, cap=200))
    out = "".join(held.feed("ghp_" + "a" * 9) for _ in range(100))
    assert out
    assert len(held.pending) <= 200 + RELEASE_STEP


def test_ordinary_words_that_begin_like_a_secret_are_released_when_they_end() -> None:
    held = HeldText(ENGINE.scan, 0, STARTS)
    assert held.feed("the pattern ") == "the pattern "
    assert held.feed("key-value") == ""  # might be a key-... secret: held while it runs
    assert held.feed(" pairs, ") == "key-value pairs, "
    assert held.feed("Hel") == "Hel"  # with no hold-back, a possible start is not held


def test_with_a_hold_back_the_first_characters_of_a_start_are_held() -> None:
    held = HeldText(ENGINE.scan, 2, STARTS)
    released = held.feed("x" * 40 + " sk")
    assert released == "x" * 40 + " "  # "sk" may begin "sk-proj-": held
    assert held.finish() == "sk"


@pytest.mark.parametrize("name", LONG_SECRETS)
def test_with_no_hold_back_a_prefix_that_arrived_whole_holds(name: str) -> None:
    """Each chunk alone: a secret leaves only if a chunk boundary cuts its very prefix."""
    secret = LONG_SECRETS[name]
    held = HeldText(ENGINE.scan, 0, STARTS)
    out = [held.feed("Here it is: "), held.feed(secret[:12])]
    out += [held.feed(secret[i : i + 7]) for i in range(12, len(secret), 7)]
    out += [held.feed(" done."), held.finish()]
    released = "".join(out)
    assert secret[:6] not in released
    assert released.startswith("Here it is: <")
