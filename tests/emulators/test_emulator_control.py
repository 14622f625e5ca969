"""The request log, the ways of running the emulator, and stopping it under load."""

from __future__ import annotations

import asyncio
import json
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from starlette.requests import Request

from llm_gateway.emulators import EmulatorServer, EmulatorState, emulator_state
from llm_gateway.emulators.state import REQUEST_LOG_LIMIT, EmulatorConfig

Directive = Callable[..., str]


async def _until(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_request_log_records_provider_requests_in_order(
    http: httpx.Client, oai: openai.OpenAI
) -> None:
    assert http.delete("/_emulator/requests").status_code == 204
    oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "logged"}])
    http.post("/api/chat", content=b"not json", headers={"X-Custom": "yes"})
    http.get("/api/version")

    log = http.get("/_emulator/requests").json()
    assert [entry["path"] for entry in log] == ["/v1/chat/completions", "/api/chat", "/api/version"]
    first = log[0]
    assert first["headers"]["authorization"].startswith("Bearer ")
    assert first["body"] == {"model": "m", "messages": [{"role": "user", "content": "logged"}]}
    assert log[1]["headers"]["x-custom"] == "yes"
    assert log[1]["body"] is None
    assert log[2]["body"] is None

    http.delete("/_emulator/requests")
    assert http.get("/_emulator/requests").json() == []


async def test_request_log_keeps_only_the_latest() -> None:
    state = EmulatorState(EmulatorConfig())

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    for i in range(REQUEST_LOG_LIMIT + 5):
        scope = {
            "type": "http",
            "method": "POST",
            "path": f"/r{i}",
            "query_string": b"",
            "headers": [],
            "scheme": "http",
            "server": ("127.0.0.1", 1),
        }
        await state.record(Request(scope, receive))
    log = state.requests()
    assert len(log) == REQUEST_LOG_LIMIT == 1000
    assert log[0]["path"] == "/r5"
    assert log[-1]["path"] == f"/r{REQUEST_LOG_LIMIT + 4}"


async def test_async_server_default_latency_and_any_key() -> None:
    async with EmulatorServer(default_latency_ms=400) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
        async with openai.AsyncOpenAI(
            base_url=server.base_url + "/v1", api_key="anything", max_retries=0
        ) as client:
            started = time.monotonic()
            slow = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            assert time.monotonic() - started >= 0.4
            assert slow.choices[0].message.content == "Echo: hi"

            started = time.monotonic()
            await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": 'x [[emulate {"latency_ms": 0}]]'}],
            )
            assert time.monotonic() - started < 0.3  # the directive wins over the default


async def test_stopping_does_not_wait_for_hung_or_slow_answers(directive: Directive) -> None:
    tasks_before = asyncio.all_tasks()
    server = EmulatorServer(reply_prefix="Re: ")
    await server.start()
    state = emulator_state(server.app)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        hung = asyncio.create_task(
            client.post(
                "/api/chat",
                json={
                    "model": "m",
                    "stream": False,
                    "messages": [{"role": "user", "content": directive(hang=True)}],
                },
            )
        )
        slow = asyncio.create_task(
            client.post(
                "/api/chat",
                json={
                    "model": "m",
                    "messages": [
                        {
                            "role": "user",
                            "content": directive("a b c d e f g h", chunk_delay_ms=1000),
                        }
                    ],
                },
            )
        )
        await _until(lambda: state.in_flight == 2)

        started = time.monotonic()
        await server.aclose()
        assert time.monotonic() - started < 2

        hung_response = await hung
        assert hung_response.status_code == 503
        lines = [json.loads(line) for line in (await slow).text.splitlines() if line]
        assert lines[0]["message"]["content"] == "Re: "
        assert not any(line["done"] for line in lines)  # cut short, no final line
    async with httpx.AsyncClient(timeout=1) as after:
        with pytest.raises(httpx.ConnectError):  # the port is closed
            await after.get(f"http://127.0.0.1:{hung_response.url.port}/api/version")
    await asyncio.sleep(0.05)
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() - tasks_before if t is not current and not t.done()]
    assert leftovers == []  # no server or answer task outlives the stop


def test_thread_server_context_manager_stops_with_a_hang_in_flight(directive: Directive) -> None:
    with EmulatorServer() as server:
        client = openai.OpenAI(
            base_url=server.base_url + "/v1", api_key="k", max_retries=0, timeout=0.2
        )
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": directive(hang=True)}]
            )
        started = time.monotonic()
    assert time.monotonic() - started < 2


def test_cli_prints_the_url_once_ready() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_gateway.emulators", "--port", "0", "--api-key", "cli-key"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "the emulator printed nothing"
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        client = openai.OpenAI(base_url=match.group(1) + "/v1", api_key="cli-key", max_retries=0)
        answer = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "from cli"}]
        )
        assert answer.choices[0].message.content == "Echo: from cli"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0


def test_a_busy_port_is_reported(emulator: EmulatorServer) -> None:
    with pytest.raises(RuntimeError, match="failed to start") as caught:
        EmulatorServer(port=emulator.port).start_in_thread()
    assert isinstance(caught.value.__cause__, OSError)
