"""End-to-end fixtures: the real gateway process in front of the provider emulators.

The gateway is configured with three models that all point at one emulator,
each through a different provider adapter:

    gpt-emu     OpenAI Chat Completions
    claude-emu  Anthropic Messages
    ollama-emu  Ollama /api/chat

Tests drive it with the official OpenAI and Anthropic SDKs and read the
audit rows straight from the database the gateway writes to.

:func:`start_gateway` serves the gateway from a thread of the test process
(``tests/e2e/inprocess.py``: the same app, server, protocol and limits as
``serve``, on a real socket), or with ``process=True`` as ``llm-gateway serve``
in a subprocess: the tests of signals, of the process's exit and of the
installed command use that. ``E2E_GATEWAY=process`` runs every gateway as a
subprocess, as the suite did before the in-process harness.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jwt
import openai
import pytest
from sqlalchemy import select

from llm_gateway.emulators import EmulatorServer
from llm_gateway.ratelimit import Limiter
from llm_gateway.settings import async_driver_url, settings_variables
from llm_gateway.storage import Database
from llm_gateway.storage.models import AuditLog
from tests.e2e.inprocess import InProcessServer

REPO = Path(__file__).resolve().parents[2]
JWT_SECRET = "e2e-secret-" + "x" * 32
PROVIDER_KEY = "emulator-provider-key"
MODELS = ("gpt-emu", "claude-emu", "ollama-emu")


def directive(text: str = "hello", **keys: Any) -> str:
    """A user message that tells the emulator how to answer (see llm_gateway.emulators)."""
    return f"{text} [[emulate {json.dumps(keys)}]]"


def wait_for(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``check`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def limiter_of(gw: Gateway) -> Limiter:
    assert gw.server is not None, "needs the in-process gateway"
    assert gw.server.app is not None
    found = gw.server.app.api.state.gateway.limiter
    assert isinstance(found, Limiter)
    return found


def frees_in(gw: Gateway, seconds: float) -> Callable[[], None]:
    """Move an in-process gateway's limiter clock so that a window filled now frees in
    ``seconds``; the undo."""
    limiter = limiter_of(gw)
    limiter.clock = lambda: time.time() + 60 - seconds

    def undo() -> None:
        limiter.clock = time.time

    return undo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def routing_yaml(emulator_url: str, timeout_ms: int = 5000) -> str:
    return f"""
routing:
  models:
    gpt-emu:
      endpoint: {emulator_url}/v1
      provider: openai
      upstream_model: gpt-4o-mini
      api_key: {PROVIDER_KEY}
      timeout_ms: {timeout_ms}
    claude-emu:
      endpoint: {emulator_url}/v1
      provider: anthropic
      upstream_model: claude-sonnet-4-5
      api_key: {PROVIDER_KEY}
      timeout_ms: {timeout_ms}
    ollama-emu:
      endpoint: {emulator_url}
      provider: ollama
      upstream_model: llama3.2
      timeout_ms: {timeout_ms}
"""


PRICING_YAML = """
models:
  gpt-emu: {input_per_million: 1.0, output_per_million: 2.0}
  claude-emu: {input_per_million: 3.0, output_per_million: 15.0}
"""


#: "process" (E2E_GATEWAY=process) starts every gateway as a subprocess.
ALL_PROCESSES = os.environ.get("E2E_GATEWAY", "inprocess") == "process"


@dataclass
class Gateway:
    base_url: str
    database_url: str
    process: subprocess.Popen[bytes] | None  # None: served in this process
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    server: InProcessServer | None = None

    def running(self) -> bool:
        """Still serving (the process has not exited; the server thread has not ended)."""
        if self.process is not None:
            return self.process.poll() is None
        return self.server is not None and self.server.running()

    def token(self, user: str = "alice", **claims: Any) -> str:
        payload = {"sub": user, "role": "user", "tier": "premium", "exp": int(time.time()) + 600}
        payload.update(claims)
        return jwt.encode(payload, JWT_SECRET, algorithm="HS256")

    def openai(self, token: str | None = None, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=token or self.token(), max_retries=0, **kw
        )

    def anthropic(self, token: str | None = None, **kw: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.base_url, api_key=token or self.token(), max_retries=0, **kw
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def audit_row(self, request_id: str, wait_s: float = 2.0) -> AuditLog:
        """The audit row of a request (committed before the answer completed).

        Only abandoned streams are recorded after the fact: for them the row is
        looked for again for up to ``wait_s``, and then it must be the only one.
        """
        rows = self.audit_rows(AuditLog.request_id == request_id)
        if not rows and wait_s > 0:
            deadline = time.monotonic() + wait_s
            while not rows and time.monotonic() < deadline:
                time.sleep(0.05)
                rows = self.audit_rows(AuditLog.request_id == request_id)
            time.sleep(0.2)  # a row written late may be written twice: look again
            rows = self.audit_rows(AuditLog.request_id == request_id)
        assert len(rows) == 1, f"expected one audit row for {request_id}, found {len(rows)}"
        return rows[0]

    def audit_rows(self, *where: Any) -> list[AuditLog]:
        async def query() -> list[AuditLog]:
            db = Database(async_driver_url(self.database_url))
            try:
                async with db.sessions() as session:
                    return list((await session.scalars(select(AuditLog).where(*where))).all())
            finally:
                await db.dispose()

        return asyncio.run(query())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


# The shipped policy, with the tiers' model lists naming the emulated models.
ACCESS_YAML = """
access:
  tiers:
    free: {models: [ollama-emu], features: [streaming]}
    premium:
      models: [gpt-emu, claude-emu, ollama-emu]
      features: [streaming, tools, json_output]
    enterprise: {models: ["*"], features: [streaming, tools, json_output]}
  deanonymize_roles: [admin]
"""


def write_policies(directory: Path, access: str = ACCESS_YAML) -> Path:
    (directory / "rego").mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    shipped = REPO / "policies" / "rego" / "authz.rego"
    (directory / "rego" / "authz.rego").write_text(shipped.read_text())
    (directory / "data" / "access.yaml").write_text(access)
    return directory


GATEWAY_VARIABLES = frozenset(settings_variables())


def start_gateway(  # noqa: PLR0913 (keyword-only: what a test may change in the set-up)
    tmp: Path,
    emulator_url: str,
    database_url: str,
    env: dict[str, str] | None = None,
    *,
    process: bool = False,
    timeout_ms: int = 5000,
    routing: str | None = None,
    access: str = ACCESS_YAML,
) -> Gateway:
    """A gateway, ready; ``process=True``: as ``llm-gateway serve`` in a subprocess.

    ``timeout_ms`` is every model's upstream timeout; ``routing`` replaces the whole
    ``routing_policies.yaml`` (its models, chains and rules; ``timeout_ms`` is then
    unused) and ``access`` the policy's tiers (``policies/data/access.yaml``)."""
    config = tmp / "config"
    config.mkdir(parents=True, exist_ok=True)
    routing_file = routing if routing is not None else routing_yaml(emulator_url, timeout_ms)
    (config / "routing_policies.yaml").write_text(routing_file)
    (config / "pricing.yaml").write_text(PRICING_YAML)
    policies = write_policies(tmp / "policies", access)
    port = free_port()
    full_env = {
        # The developer's own settings (OPA_URL, DLP_*, ...) must not leak in.
        **{k: v for k, v in os.environ.items() if k not in GATEWAY_VARIABLES},
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "CONFIG_DIR": str(config),
        "POLICY_DIR": str(policies),
        "DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "LOG_FORMAT": "json",
        "DEMO_MODEL": "off",
        "API_KEY_CACHE_SECONDS": "0",
        "DLP_NER": "off",  # the tests that need names and places switch it on
        "DLP_STREAM_HOLDBACK": "0",  # chunks pass one for one (each still scanned)
        # Limits on, far above what any test sends; the tests of limits set their own.
        "RATE_LIMIT_PER_USER": "1000000",
        "RATE_LIMIT_PER_TENANT": "1000000",
        **(env or {}),
    }
    log_path = tmp / "gateway.log"
    if not (process or ALL_PROCESSES):
        server = InProcessServer(full_env, tmp, log_path)
        try:
            bound = server.start()
        except RuntimeError as exc:  # the message says what stopped it, as for a process
            raise RuntimeError(str(exc)) from None
        return Gateway(f"http://127.0.0.1:{bound}", database_url, None, log_path, full_env, server)
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "llm_gateway.cli", "serve"],
            env=full_env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", database_url, child, log_path, full_env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the gateway exited at start-up:\n{gateway.logs()}")
        try:
            if httpx.get(f"{gateway.base_url}/ready", timeout=1).status_code == 200:
                return gateway
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_gateway(gateway)
    raise RuntimeError(f"the gateway did not become ready:\n{gateway.logs()}")


def stop_gateway(gateway: Gateway, grace_s: float = 15) -> None:
    """Stop as SIGTERM does (gracefully), forcibly after ``grace_s``."""
    if gateway.server is not None:
        gateway.server.stop(grace_s)
        return
    assert gateway.process is not None
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(api_key=PROVIDER_KEY).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One gateway on SQLite for the whole session."""
    tmp = tmp_path_factory.mktemp("gateway")
    gw = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db")
    try:
        yield gw
    finally:
        stop_gateway(gw)


#: The upstream timeout of :func:`quick_timeout_gateway`'s models, in seconds.
QUICK_TIMEOUT_S = 1.0


@pytest.fixture(scope="session")
def quick_timeout_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Like ``gateway``, with every model's timeout_ms at QUICK_TIMEOUT_S: for the tests
    of an upstream that never answers, which otherwise wait out the 5 s timeout."""
    tmp = tmp_path_factory.mktemp("quick-timeout")
    gw = start_gateway(
        tmp,
        emulator.base_url,
        f"sqlite:///{tmp}/data/gateway.db",
        timeout_ms=int(QUICK_TIMEOUT_S * 1000),
    )
    try:
        yield gw
    finally:
        stop_gateway(gw)
