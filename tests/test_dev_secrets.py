"""Development secrets: created once, complete, private, whoever gets there first."""

from __future__ import annotations

import secrets
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llm_gateway.dev_secrets import read_or_create_secret


def test_created_once_and_then_read(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret"
    first = read_or_create_secret(path, lambda: secrets.token_urlsafe(32))
    assert read_or_create_secret(path, lambda: "another") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret"]  # no temporary left


def test_racing_creators_all_get_the_one_complete_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda _: read_or_create_secret(path, secrets.token_hex), range(64)))
    assert len(set(got)) == 1
    assert len(got[0]) == 64  # token_hex(): 32 bytes, never a half-written file
    assert path.read_text().strip() == got[0]
