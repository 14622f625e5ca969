"""Kept-alive connections: a request sent on an idle connection is answered and recorded.

uvicorn closes a connection idle for its keep-alive timeout without a word, and
a request sent on it as it does so is lost: no answer, no audit row (issue #22,
two in about 21,000 requests). Its default, 5 s, is also how long httpx (the
OpenAI and Anthropic SDKs) keeps an idle connection, so an SDK client that
waited just under 5 s raced the close; a load balancer (60 s) always did. The
gateway keeps an idle connection ``HTTP_KEEP_ALIVE_SECONDS`` (75 s), longer
than those, so that the client, never the gateway, closes it.
``bench/keepalive_race.py`` measures the race.

``llm-gateway serve`` processes, since the keep-alive is the server's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path

import pytest
from bench.keepalive_race import (
    RawConnection,
    Tally,
    check_audit,
    closed_while_idle,
    drive,
)

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway

OLD_KEEP_ALIVE_S = 5.0  # uvicorn's default, the gateway's until HTTP_KEEP_ALIVE_SECONDS


@pytest.fixture(scope="module")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """``serve`` on the default keep-alive, open to many connections from 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("keepalive")
    gateway = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gw.db",
        {"HTTP_MAX_CONNECTIONS_PER_CLIENT": "0"}, process=True,
    )  # fmt: skip
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def _idle_then_reuse(gw: Gateway, idle_s: float, prefix: str) -> tuple[bool, Tally]:
    """One connection: a request, ``idle_s`` of silence, whether the gateway closed it
    meanwhile, then a second request on it (or on a new one if it did)."""

    async def run() -> tuple[bool, Tally]:
        tally = Tally()
        connection = RawConnection(gw.base_url)
        closed = False
        try:
            for n in range(2):
                if n:
                    await asyncio.sleep(idle_s)
                    assert connection.streams is not None
                    closed = closed_while_idle(*connection.streams)
                    if closed:
                        await connection.close()
                subject = f"{prefix}-{n}"
                tally.statuses[await connection.send(gw.token(subject))] += 1
                tally.answered.append(subject)
        finally:
            await connection.close()
        return closed, tally

    return asyncio.run(run())


def test_a_connection_idle_past_the_old_timeout_is_reused_answered_and_recorded(
    gw: Gateway,
) -> None:
    closed, tally = _idle_then_reuse(gw, OLD_KEEP_ALIVE_S + 0.5, "reuse")
    assert not closed, "the gateway closed a connection idle for 5.5 s"
    assert tally.statuses == Counter({"200": 2})
    audit = check_audit(gw, tally, "reuse")
    assert audit.answered_without_one_row == []


def test_the_gateway_closes_an_idle_connection_after_http_keep_alive_seconds(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    short = start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db",
        {"HTTP_KEEP_ALIVE_SECONDS": "1"}, process=True,
    )  # fmt: skip
    try:
        closed, tally = _idle_then_reuse(short, 3.0, "short")  # 2 s of margin for a busy machine
    finally:
        stop_gateway(short)
    assert closed  # by the gateway, while idle: the client saw it and opened another
    assert tally.statuses == Counter({"200": 2})


#: Each client: this many requests, idle around the old timeout between two.
ROUNDS = 5
CONNECTIONS = 250  # per kind of client: 2 x 250 x 5 = 2,500 requests in about 25 s
GAP_S, SPREAD_S = OLD_KEEP_ALIVE_S - 0.002, 0.004


def test_thousands_of_requests_reusing_connections_idle_around_the_old_timeout_lose_none(
    gw: Gateway,
) -> None:
    """At 5 s this lost about one reused request in ten (bench/keepalive_race.py)."""

    async def run() -> tuple[Tally, Tally]:
        def clients(prefix: str, client: str) -> Coroutine[None, None, Tally]:
            return drive(
                gw.base_url, gw.token, connections=CONNECTIONS, rounds=ROUNDS, gap_s=GAP_S,
                spread_s=SPREAD_S, prefix=prefix, client=client, expiry=OLD_KEEP_ALIVE_S,
            )  # fmt: skip

        return await asyncio.gather(clients("raw", "raw"), clients("httpx", "httpx"))

    started = time.monotonic()
    raw, pooled = asyncio.run(run())
    assert time.monotonic() - started >= (ROUNDS - 1) * (GAP_S - SPREAD_S)  # they did idle
    for tally, prefix in ((raw, "raw"), (pooled, "httpx")):
        assert tally.sent == CONNECTIONS * ROUNDS
        assert tally.dropped == []
        assert tally.timed_out == []
        assert tally.statuses == Counter({"200": CONNECTIONS * ROUNDS})
        audit = check_audit(gw, tally, prefix)
        assert audit.answered_without_one_row == []
    # Every idle connection was still open when reused: the gateway closed none.
    assert raw.closed_idle == 0
    assert len(raw.gaps) == CONNECTIONS * (ROUNDS - 1)
