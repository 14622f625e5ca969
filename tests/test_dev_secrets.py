"""Development secrets: created once, complete, private, whoever gets there first."""

from __future__ import annotations

import secrets
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llm_gateway.dev_secrets import SecretFileError, read_or_create_secret


def test_created_once_and_then_read(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret"
    first = read_or_create_secret(path, lambda: secrets.token_urlsafe(32), length=43)
    assert read_or_create_secret(path, lambda: "another", length=7) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret"]  # no temporary left


def test_racing_creators_all_get_the_one_complete_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    with ThreadPoolExecutor(16) as pool:
        got = list(
            pool.map(lambda _: read_or_create_secret(path, secrets.token_hex, length=64), range(64))
        )
    assert len(set(got)) == 1
    assert len(got[0]) == 64  # token_hex(): 32 bytes, never a half-written file
    assert path.read_text().strip() == got[0]


@pytest.mark.parametrize(("content", "says"), [("", "is empty"), ("abc\n", "holds 3 of the 64")])
def test_an_empty_or_cut_short_file_is_reported_not_used(
    tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "secret"
    path.write_text(content)
    with pytest.raises(SecretFileError) as info:
        read_or_create_secret(path, secrets.token_hex, length=64)
    message = str(info.value)
    assert says in message
    assert str(path) in message
    assert "delete it" in message
    assert "\n" not in message
    assert path.read_text() == content  # left for the operator to look at
