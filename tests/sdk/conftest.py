"""Fixtures of the SDK's tests: a real gateway in front of the emulator, and a fake server.

The gateway (``tests/e2e/conftest.py``'s :func:`start_gateway`) serves the e2e
models plus ``claude-3-sonnet`` (the specification's SDK example asks for it)
and ``demo`` (the SDK's README's examples do),
has a confirmation rule (``delete`` in production, no cooldown), and a
``trickle`` tier of one request a minute for the tests of retried 429s.
The fake server (:class:`FakeServer`) answers what a test tells it to: a
proxy's HTML page, a stream cut short, an error body of any shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import (
    ACCESS_YAML,
    PRICING_YAML,
    Gateway,
    emulator,
    routing_yaml,
    start_gateway,
    stop_gateway,
)

__all__ = ["emulator"]  # the e2e suite's session emulator, as a fixture here too

#: The specification's example model, served by the emulator through the Anthropic adapter.
SPEC_MODEL = "claude-3-sonnet"
#: The model the SDK's README uses: the name ``make run`` serves with no provider configured.
README_MODEL = "demo"
GUARDRAILS = """
guardrails:
  hitl:
    enabled: true
    confirmation_required:
      - pattern: "delete|terminate"
        environments: ["production"]
"""
RATE_LIMITS = """
tiers:
  premium: {requests_per_minute: 1000000, models: ["*"]}
  enterprise: {requests_per_minute: 1000000, models: ["*"]}
  free: {requests_per_minute: 1000000, models: ["*"]}
  trickle: {requests_per_minute: 1, models: ["*"]}
"""
ACCESS = ACCESS_YAML.replace(
    "premium:\n      models: [gpt-emu, claude-emu, ollama-emu]",
    f"premium:\n      models: [gpt-emu, claude-emu, ollama-emu, {SPEC_MODEL}, {README_MODEL}]",
).replace(
    "  deanonymize_roles:",
    "    trickle: {models: [gpt-emu], features: [streaming]}\n  deanonymize_roles:",
)
assert SPEC_MODEL in ACCESS
assert "trickle" in ACCESS


def sdk_config(tmp: Path, emulator_url: str) -> Path:
    """The gateway's configuration directory for the SDK's tests."""
    config = tmp / "sdk-config"
    config.mkdir(parents=True, exist_ok=True)
    spec_model = f"""
    {SPEC_MODEL}:
      endpoint: {emulator_url}/v1
      provider: anthropic
      upstream_model: claude-3-sonnet-20240229
      api_key: emulator-provider-key
      timeout_ms: 5000
    {README_MODEL}:
      endpoint: {emulator_url}/v1
      provider: openai
      upstream_model: gpt-4o-mini
      api_key: emulator-provider-key
      timeout_ms: 5000
"""
    (config / "routing_policies.yaml").write_text(routing_yaml(emulator_url) + spec_model)
    price = "{input_per_million: 3.0, output_per_million: 15.0}"
    pricing = PRICING_YAML + f"  {SPEC_MODEL}: {price}\n"
    (config / "pricing.yaml").write_text(pricing)
    (config / "guardrails.yaml").write_text(GUARDRAILS)
    (config / "rate_limits.yaml").write_text(RATE_LIMITS)
    return config


def sdk_gateway(tmp: Path, emulator: EmulatorServer, *, process: bool = False) -> Gateway:
    config = sdk_config(tmp, emulator.base_url)
    env = {"CONFIG_DIR": str(config), "ENVIRONMENT": "production"}
    return start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db", env,
        process=process, access=ACCESS,
    )  # fmt: skip


@pytest.fixture(scope="session")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The SDK tests' gateway, served from a thread of this process."""
    gateway = sdk_gateway(tmp_path_factory.mktemp("sdk"), emulator)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


# --- a fake server -----------------------------------------------------------------

#: A handler's answer: status, headers, and the body's pieces (each flushed), then
#: whether to drop the connection without finishing the body.
Answer = tuple[int, dict[str, str], list[bytes], bool]


@dataclass
class FakeServer:
    """An HTTP server on a free port whose every answer is ``answer(method, path)``."""

    answer: Callable[[str, str], Answer]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                fake.seen.append((self.command, self.path, dict(self.headers)))
                status, headers, pieces, drop = fake.answer(self.command, self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if drop:  # promise more than is sent, then hang up
                    self.send_header("content-length", str(sum(map(len, pieces)) + 1000))
                else:
                    self.send_header("content-length", str(sum(map(len, pieces))))
                self.end_headers()
                for piece in pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()
                if drop:
                    self.close_connection = True

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Callable[[Callable[[str, str], Answer]], FakeServer]]:
    """``fake(answer)``: a started :class:`FakeServer`, stopped after the test."""
    started: list[FakeServer] = []

    def make(answer: Callable[[str, str], Answer]) -> FakeServer:
        server = FakeServer(answer).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
