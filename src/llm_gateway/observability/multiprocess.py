"""The directory the workers of ``serve`` share their metrics through (``WORKERS`` > 1).

prometheus-client's multiprocess mode keeps each process's counters in files of
the directory ``PROMETHEUS_MULTIPROC_DIR`` names, and a scrape adds them up. It
is chosen when the client is imported, so the variable must be in the
environment before a worker starts: :func:`prepare` runs in ``serve``, before
the workers are spawned (they inherit the environment). When the variable is
not set, it makes a temporary directory and removes it when the server exits;
when it is set, the files a previous run left there are removed first, as the
client requires (a counter must not start from the last run's value).

This module imports nothing of prometheus-client's, so the supervisor itself
never picks a mode.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int, environ: dict[str, str] | None = None) -> Path | None:
    """Set up the shared directory for ``workers`` processes; None when one needs none.

    ``environ`` is the environment the workers will inherit (default: this process's).
    """
    env: dict[str, str] | os._Environ[str] = os.environ if environ is None else environ
    given = env.get(VARIABLE, "").strip()
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # the client's files, from an earlier run
            stale.unlink(missing_ok=True)
        log.info("metrics: the workers share %s", path)
        return path
    if workers <= 1:
        return None
    path = Path(tempfile.mkdtemp(prefix="llm-gateway-metrics-"))
    env[VARIABLE] = str(path)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    log.info("metrics: the workers share %s (a temporary directory)", path)
    return path
