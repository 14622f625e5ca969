"""The SDK's README runs: each Python block, against a real gateway process.

The gateway is ``llm-gateway serve`` in a subprocess (``process=True``) and the
credential an API key made with ``llm-gateway keys create``, as a user would
have them. Each block runs in a fresh interpreter with ``LLM_GATEWAY_URL`` and
``LLM_GATEWAY_API_KEY`` set; the specification's example, which names its URL
and key, runs with those two placeholders replaced, and nothing else changed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import llm_gateway_sdk
from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import REPO, Gateway, stop_gateway
from tests.sdk.conftest import sdk_gateway

README = REPO / "sdk" / "README.md"
SDK_SRC = Path(llm_gateway_sdk.__file__).resolve().parents[1]

#: The product specification's SDK example, verbatim (its "Usage / Python SDK" section).
SPEC_EXAMPLE = """from llm_gateway_sdk import Gateway

# Initialize gateway client
gateway = Gateway(
    api_url="http://localhost:8080",
    api_key="your_api_key"
)

# Send chat request
response = gateway.chat(
    model="claude-3-sonnet",
    messages=[
        {"role": "user", "content": "Analyze this data"}
    ]
)

print(response.content)
print(f"Tokens: {response.tokens_used}")
print(f"Cost: ${response.cost}")
"""


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


BLOCKS = python_blocks(README.read_text())


@pytest.fixture(scope="module")
def served(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, str]]:
    """A gateway process, and an API key of a premium user of it."""
    tmp = tmp_path_factory.mktemp("sdk-readme")
    gateway = sdk_gateway(tmp, emulator, process=True)
    try:
        made = subprocess.run(
            [sys.executable, "-m", "llm_gateway.cli", "keys", "create", "--user", "readme",
             "--role", "user", "--tier", "premium", "--tenant", "acme"],
            env=gateway.env, cwd=tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        yield gateway, made.stdout.strip()
    finally:
        stop_gateway(gateway)


def run(code: str, gateway: Gateway, key: str) -> subprocess.CompletedProcess[str]:
    code = code.replace("http://localhost:8080", gateway.base_url).replace("your_api_key", key)
    pythonpath = os.pathsep.join(p for p in (str(SDK_SRC), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "LLM_GATEWAY_URL": gateway.base_url, "LLM_GATEWAY_API_KEY": key,
           "PYTHONPATH": pythonpath}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def test_the_readme_has_the_specifications_example_verbatim() -> None:
    assert SPEC_EXAMPLE in BLOCKS
    assert len(BLOCKS) >= 7


def test_the_specifications_example_runs(served: tuple[Gateway, str]) -> None:
    gateway, key = served
    done = run(SPEC_EXAMPLE, gateway, key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Echo: Analyze this data",
        "Tokens: 7",
        f"Cost: ${(3 * 3.0 + 4 * 15.0) / 1e6}",
    ]


#: What each block (by its first distinctive line) must print, in part.
EXPECTED = {
    "for model in gateway.models()": [
        "demo model", "True ['SSN']", "Echo: My SSN is <SSN_REDACTED>",
    ],
    "stream=True,": ["Echo: Tell me a story", "Tokens: "],
    "AsyncGateway": ["Echo: Question 0", "Echo: Question 2", "Echo: Stream this", "True"],
    "DlpBlocked": ["blocked: dlp_blocked", "refused: 401 malformed_token", "unreachable: "],
    "Delete the old backups": ["[STOP] This action requires confirmation.", "approved",
                               "Echo: Delete the old backups", "cancelled"],
    "check_grounding": ["False", "contradicted", "False ['missing'"],
    "gateway.scan(": ["CREDIT_CARD", "<CREDIT_CARD_REDACTED>", "own usage: ",
                       "requests left this minute"],
}  # fmt: skip


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_readme_block_runs(served: tuple[Gateway, str], index: int) -> None:
    gateway, key = served
    block = BLOCKS[index]
    done = run(block, gateway, key)
    assert done.returncode == 0, f"block {index}:\n{block}\nstderr:\n{done.stderr}"
    for marker, outputs in EXPECTED.items():
        if marker in block and (marker != "stream=True," or "AsyncGateway" not in block):
            for output in outputs:
                assert output in done.stdout, f"block {index}: {output!r} not in {done.stdout}"
