"""SIGTERM with a stream longer than the grace: the stream ends with the format's error
event, and its audit row says ``server_shutdown``, not that the client went away.

A real ``llm-gateway serve`` process, since the signal and uvicorn's graceful shutdown are
what is under test.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import directive, start_gateway, stop_gateway, wait_for

GRACE_S = 2
CHUNKS = [f"word{n} " for n in range(200)]  # 200 chunks 100 ms apart: far longer than the grace


def test_sigterm_ends_a_long_stream_with_an_error_event_and_its_own_row(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db",
        {"SHUTDOWN_GRACE_SECONDS": str(GRACE_S)}, process=True,
    )  # fmt: skip
    lines: list[str] = []
    headers: dict[str, str] = {}
    started = threading.Event()

    def read() -> None:
        body = {
            "model": "gpt-emu",
            "stream": True,
            "messages": [
                {"role": "user", "content": directive("go", chunks=CHUNKS, chunk_delay_ms=100)}
            ],
        }
        with httpx.Client(base_url=gw.base_url, timeout=30) as http, http.stream(
            "POST", "/v1/chat/completions", json=body,
            headers={"authorization": f"Bearer {gw.token()}"},
        ) as answer:  # fmt: skip
            headers.update(answer.headers)
            for line in answer.iter_lines():
                lines.append(line)
                started.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert started.wait(10)
        assert gw.process is not None
        gw.process.terminate()  # SIGTERM
        reader.join(GRACE_S + 10)
        assert not reader.is_alive()
        assert gw.process.wait(10) in (0, -15)  # uvicorn re-raises the signal once it is done
    finally:
        stop_gateway(gw)
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert any(e.get("choices") for e in events)  # part of the answer came through
    last = events[-1]
    assert last["error"]["code"] == "server_shutdown"
    assert not any(line == "data: [DONE]" for line in lines)
    assert wait_for(lambda: gw.audit_row(headers["x-request-id"]) is not None)
    row = gw.audit_row(headers["x-request-id"])
    assert (row.status, row.error_code) == (503, "server_shutdown")
    assert row.tokens_out > 0  # what was sent is accounted
