"""Streamed answers: nothing is released before it is scanned, whatever the chunking."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.findings import Action
from llm_gateway.dlp.outbound import HeldText, redact_with_markers

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
