"""Running the ``llm-gateway`` command in the test process, as its entry point would.

A subprocess costs most of a second (the interpreter and the imports) before
the command does anything; :func:`run_cli` calls :func:`llm_gateway.cli.main`
instead, with the process environment replaced by ``env`` (the command reads
its settings, and the config files their ``${NAME}`` references, from
``os.environ``), the working directory set to ``cwd`` (where ``.env`` is
looked for), stdin fed from ``stdin`` and stdout and stderr captured. The
exit status is what the console script would exit with: ``main``'s return
value, or the code of a ``SystemExit`` (argparse's usage errors).

``serve`` never listens in-process: :func:`llm_gateway.server.serve` is
replaced for the call by a stub that records its configuration and returns
(so a ``serve`` that got past its start-up checks returns 0), and the logging
configuration it would install is undone. It is for the start-up checks that
make ``serve`` exit before it listens; a gateway that serves is started by
``tests/e2e/conftest.py``.

The result is a :class:`subprocess.CompletedProcess`, so a test reads the same
fields either way; ``tests/test_cli.py`` keeps true subprocess tests of the
installed ``llm-gateway`` command and of ``python -m llm_gateway.cli``.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from llm_gateway import cli

if TYPE_CHECKING:  # at run time llm_gateway.server (uvicorn) is imported lazily, as the cli does
    from llm_gateway.server import ServerConfig

_lock = threading.Lock()  # one command at a time: the environment and cwd are the process's

#: The configurations ``serve`` would have served, run in-process (newest last).
SERVED: list[ServerConfig] = []


def _record(config: ServerConfig) -> None:
    """What ``serve`` does in-process: note the configuration, serve nothing."""
    SERVED.append(config)


@contextlib.contextmanager
def never_listening() -> Iterator[None]:
    """``llm_gateway.server.serve`` records instead of serving; logging is restored after."""
    import logging

    import llm_gateway.server

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = llm_gateway.server.serve
    llm_gateway.server.serve = _record
    try:
        yield
    finally:
        llm_gateway.server.serve = saved
        root.handlers[:], root.level = handlers, level


@contextlib.contextmanager
def process_state(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """``os.environ`` replaced by ``env`` and the working directory by ``cwd``, then restored."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


@overload
def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    stdin: bytes | None = None,
    text: Literal[True] = True,
) -> subprocess.CompletedProcess[str]: ...


@overload
def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    stdin: bytes | None = None,
    text: Literal[False],
) -> subprocess.CompletedProcess[bytes]: ...


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    stdin: bytes | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """``llm-gateway ARGS`` run in-process; the result as ``subprocess.run`` would give it."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    with _lock, process_state(env, cwd), contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        saved_stdin, sys.stdin = sys.stdin, fake_stdin
        stack.callback(setattr, sys, "stdin", saved_stdin)
        stack.enter_context(never_listening())
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    argv = ["llm-gateway", *args]
    if text:
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    return subprocess.CompletedProcess(argv, code, out.getvalue().encode(), err.getvalue().encode())
