"""Development secrets kept in DATA_DIR, created once and shared by every process.

A fresh machine needs a JWT secret and a vault key that ``llm-gateway token
create``, the gateway and its workers agree on, without anyone choosing a weak
one. The file is written complete under a temporary name and then linked into
place, so a process that loses the race to create it never reads it half
written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret in ``path``, creating it (mode 0600) with ``generate()`` if absent."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = generate()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates it 0600
            handle.write(secret + "\n")
        os.link(temporary, path)
    except FileExistsError:  # another process won the race, with a complete file
        return path.read_text().strip()
    finally:
        os.unlink(temporary)
    return secret
