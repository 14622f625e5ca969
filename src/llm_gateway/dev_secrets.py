"""Development secrets kept in DATA_DIR, created once and shared by every process.

A fresh machine needs a JWT secret and a vault key that ``llm-gateway token
create``, the gateway and its workers agree on, without anyone choosing a weak
one. The file is written complete under a temporary name, flushed to disk,
then linked into place and the folder flushed too: a process that loses the
race to create it never reads it half written, and a crash or a full disk
cannot leave an empty file behind. A file found empty or shorter than written
anyway (copied badly, edited) is reported as such, with what to do.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class SecretFileError(ValueError):
    """A development secret's file is unusable; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class DevSecret:
    """A development secret's file, and how many characters its generator writes."""

    path: Path
    length: int

    def check(self) -> None:
        """Refuse (:class:`SecretFileError`) a file that exists but is not whole."""
        with contextlib.suppress(FileNotFoundError):  # absent: made when first needed
            check_secret_file(self.path, self.length)

    def read_or_create(self, generate: Callable[[], str]) -> str:
        return read_or_create_secret(self.path, generate, length=self.length)


def read_or_create_secret(path: Path, generate: Callable[[], str], *, length: int) -> str:
    """The secret in ``path``, creating it (mode 0600) with ``generate()`` if absent.

    ``length`` is how many characters ``generate`` makes: a shorter file is refused.
    """
    try:
        return check_secret_file(path, length)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = generate()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates it 0600
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        _sync_folder(path.parent)
    except FileExistsError:  # another process won the race, with a complete file
        return check_secret_file(path, length)
    finally:
        os.unlink(temporary)
    return secret


def check_secret_file(path: Path, length: int) -> str:
    """The secret ``path`` holds; ``FileNotFoundError`` if absent, :class:`SecretFileError`
    if it is empty or shorter than ``length``."""
    secret = path.read_text().strip()
    remedy = (
        "it was cut short (a crash or a full disk); delete it and a new one is made, "
        "but what the old one signed or sealed can no longer be read"
    )
    if not secret:
        raise SecretFileError(f"{path} is empty: {remedy}")
    if len(secret) < length:
        raise SecretFileError(
            f"{path} holds {len(secret)} of the {length} characters written: {remedy}"
        )
    return secret


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries, so that a file linked into it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
