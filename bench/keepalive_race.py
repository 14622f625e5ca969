"""Requests lost between a client's reuse of an idle connection and the server's close of it.

An HTTP/1.1 server closes a kept-alive connection that has been idle for its
keep-alive timeout, and says nothing when it does (there is no request to
answer). A client that sends its next request on that connection just as the
server closes it gets no answer: its bytes arrive at a socket that is closed,
or closed with them unread, and the kernel resets the connection. The server
never parsed the request, so it wrote no audit row either.

This starts ``llm-gateway serve`` (SQLite, one worker) in front of the
provider emulator, and drives it with ``--connections`` connections, each
sending ``--rounds`` chat requests and idling ``--gap`` seconds give or take
``--spread-ms`` between two of them (uniformly, from when the previous answer
was read). Before reusing a connection a client does what a connection pool
does (httpcore, aiohttp, nginx's upstream cache): if the socket has become
readable while idle, the server has closed it, and a new connection is opened
instead; that is counted as *closed while idle*, and loses nothing. A request
that was sent and saw the connection end before a status line is *dropped*.
Every request carries a JWT of its own subject, so afterwards each one's
audit rows are counted.

``--client httpx`` uses an httpx pool of one connection per client instead
(the OpenAI and Anthropic SDKs' transport, which keeps an idle connection
for ``--expiry`` seconds, 5 by default, and looks at it the same way).
``--busy`` connections send back-to-back requests meanwhile, as load does,
which widens the window (the server's event loop reaches its timer and the
request's bytes later). ``--keep-alive`` sets the gateway's
``HTTP_KEEP_ALIVE_SECONDS``.

    .venv/bin/python bench/keepalive_race.py --keep-alive 5   # uvicorn's: ~1 reuse in 10 lost
    .venv/bin/python bench/keepalive_race.py --keep-alive 5 --client httpx --gap 4.997
    .venv/bin/python bench/keepalive_race.py                  # the default, 75 s: none

(by default 100 connections of 4 requests, idle 4.999 s +- 3 ms, 8 busy).
The figures are in docs/performance.md (Kept-alive connections).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import select
import shutil
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
for path in (REPO / "src", REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.e2e.conftest import (  # noqa: E402
    PROVIDER_KEY,
    Gateway,
    start_gateway,
    stop_gateway,
)

from llm_gateway.emulators import EmulatorServer  # noqa: E402
from llm_gateway.storage.models import AuditLog  # noqa: E402

BODY = orjson.dumps(
    {"model": "gpt-emu", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]}
)
READ_TIMEOUT_S = 30.0


@dataclass
class Tally:
    """What happened to every request of a run, by subject (one per request)."""

    answered: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # sent; the connection ended, no status
    timed_out: list[str] = field(default_factory=list)
    closed_idle: int = 0  # the server had closed the idle connection first: a new one was opened
    statuses: Counter[str] = field(default_factory=Counter)
    busy_requests: int = 0
    gaps: list[tuple[float, str]] = field(default_factory=list)  # (idle s, what came of it)

    @property
    def sent(self) -> int:
        return len(self.answered) + len(self.dropped) + len(self.timed_out)


class Dropped(Exception):
    """The connection ended (EOF or reset) before the answer's status line."""


def request_bytes(host: str, token: str) -> bytes:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> str:
    """Send one request and read its whole answer; its status (and error code, if any).

    Raises :class:`Dropped`."""
    try:
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Dropped(type(exc).__name__) from None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1])
        for line in lines[1:]
        if line.lower().startswith("content-length:")
    )
    body = await reader.readexactly(length)  # a cut here is a broken answer, not a lost request
    if status == 200:
        return "200"
    try:
        return f"{status} {orjson.loads(body)['error']['code']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return str(status)


def closed_while_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """A pool's check before reuse: an idle connection that became readable was closed."""
    if reader.at_eof() or writer.is_closing():
        return True
    sock = writer.get_extra_info("socket")
    readable, _, _ = select.select([sock.fileno()], [], [], 0)
    return bool(readable)


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


class RawConnection:
    """One connection, reused as a pool does: reopened when the server has closed it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.host = urlsplit(url).netloc
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, token: str) -> str:
        if self.streams is None:
            self.streams = await _connect(self.url)
        try:
            return await asyncio.wait_for(
                exchange(*self.streams, request_bytes(self.host, token)), READ_TIMEOUT_S
            )
        except (Dropped, TimeoutError):
            await self.close()
            raise

    def closed_while_idle(self) -> bool | None:
        return self.streams is not None and closed_while_idle(*self.streams)

    async def close(self) -> None:
        if self.streams is not None:
            await _close(self.streams[1])
            self.streams = None


class HttpxConnection:
    """An httpx client of one pooled connection: the OpenAI and Anthropic SDKs' transport.

    Its pool keeps an idle connection for ``expiry`` seconds (httpx's default, 5 s,
    is the SDKs') and checks it as :func:`closed_while_idle` does before reuse.
    """

    def __init__(self, url: str, expiry: float) -> None:
        limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=expiry
        )
        self.client = httpx.AsyncClient(
            base_url=url,
            limits=limits,
            timeout=READ_TIMEOUT_S,
            verify=_ssl_context(),  # one for all: loading the CA bundle costs ~20 ms a client
        )

    async def send(self, token: str) -> str:
        try:
            answer = await self.client.post(
                "/v1/chat/completions",
                content=BODY,
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.TransportError as exc:  # "Server disconnected without sending a response."
            raise Dropped(type(exc).__name__) from None
        if answer.status_code == 200:
            return "200"
        return f"{answer.status_code} {answer.json().get('error', {}).get('code')}"

    def closed_while_idle(self) -> bool | None:
        return None  # the pool looks, and reconnects, without saying so

    async def close(self) -> None:
        await self.client.aclose()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


Connection = RawConnection | HttpxConnection


async def _client(  # noqa: PLR0913 (one connection's part in the run)
    connection: Connection,
    token: Callable[[str], str],
    tally: Tally,
    name: str,
    *,
    rounds: int,
    gap_s: float,
    spread_s: float,
    start_s: float,
    rng: random.Random,
) -> None:
    await asyncio.sleep(start_s)
    idle = 0.0
    try:
        for n in range(rounds):
            subject = f"{name}-{n}"
            bearer = token(subject)
            reused = False
            if n:
                idle = time.monotonic()
                await asyncio.sleep(max(0.0, gap_s + rng.uniform(-spread_s, spread_s)))
                idle = time.monotonic() - idle
                closed = connection.closed_while_idle()
                if closed:
                    tally.closed_idle += 1
                    tally.gaps.append((idle, "closed"))
                    await connection.close()
                reused = not closed  # False: reopened; None (httpx): the pool's own choice
            try:
                status = await connection.send(bearer)
            except Dropped:
                tally.dropped.append(subject)
                if reused:
                    tally.gaps.append((idle, "dropped"))
                continue
            except TimeoutError:
                tally.timed_out.append(subject)
                continue
            tally.answered.append(subject)
            tally.statuses[status] += 1
            if reused:
                tally.gaps.append((idle, "answered"))
    finally:
        await connection.close()


async def _busy(url: str, token: str, tally: Tally, stop: asyncio.Event) -> None:
    """Back-to-back requests on one connection until ``stop``: load, not measured."""
    host = urlsplit(url).netloc
    data = request_bytes(host, token)
    reader, writer = await _connect(url)
    try:
        while not stop.is_set():
            try:
                await exchange(reader, writer, data)
                tally.busy_requests += 1
            except Dropped:
                await _close(writer)
                reader, writer = await _connect(url)
    finally:
        await _close(writer)


async def drive(  # noqa: PLR0913 (the run's shape)
    url: str,
    token: Callable[[str], str],
    *,
    connections: int,
    rounds: int,
    gap_s: float,
    spread_s: float,
    busy: int = 0,
    prefix: str = "ka",
    seed: int = 22,
    client: str = "raw",
    expiry: float = 5.0,
) -> Tally:
    """Run ``connections`` clients of ``rounds`` requests each (see the module's doc).

    Their first requests are spread over one gap, so that the load is even; every
    request's subject is ``{prefix}-{connection}-{round}``. ``client``: "raw" (a
    connection of this module's) or "httpx" (an httpx pool of one connection kept
    ``expiry`` seconds).
    """
    tally = Tally()
    rng = random.Random(seed)
    stop = asyncio.Event()
    loaders = [
        asyncio.create_task(_busy(url, token(f"{prefix}-busy-{n}"), tally, stop))
        for n in range(busy)
    ]
    clients = [
        _client(
            RawConnection(url) if client == "raw" else HttpxConnection(url, expiry),
            token,
            tally,
            f"{prefix}-{c}",
            rounds=rounds,
            gap_s=gap_s,
            spread_s=spread_s,
            start_s=gap_s * c / connections,
            rng=random.Random(rng.random()),
        )
        for c in range(connections)
    ]
    try:
        await asyncio.gather(*clients)
    finally:
        stop.set()
        await asyncio.gather(*loaders, return_exceptions=True)
    return tally


@dataclass(frozen=True)
class AuditCheck:
    answered_without_one_row: list[str]  # answered, and not exactly one row
    dropped_with_a_row: list[str]  # no answer, yet the gateway served it


def check_audit(gw: Gateway, tally: Tally, prefix: str = "ka") -> AuditCheck:
    rows = gw.audit_rows(AuditLog.user_id.like(f"{prefix}-%"))
    count = Counter(row.user_id for row in rows)
    return AuditCheck(
        answered_without_one_row=[s for s in tally.answered if count[s] != 1],
        dropped_with_a_row=[s for s in tally.dropped + tally.timed_out if count[s]],
    )


def gaps(tally: Tally) -> str:
    """The range of idle times (ms) that ended each way."""
    ranges = []
    for outcome in ("answered", "dropped", "closed"):
        found = [idle * 1000 for idle, what in tally.gaps if what == outcome]
        if found:
            ranges.append(f"{outcome} {min(found):.1f}-{max(found):.1f}")
    return ", ".join(ranges) or "-"


def report(tally: Tally, audit: AuditCheck, seconds: float) -> str:
    lines = [
        f"requests sent            {tally.sent}",
        f"answered                 {len(tally.answered)} {dict(sorted(tally.statuses.items()))}",
        f"dropped (no answer)      {len(tally.dropped)}",
        f"timed out                {len(tally.timed_out)}",
        f"closed while idle        {tally.closed_idle} (by the server first; reconnected)",
        f"answered, rows != 1      {len(audit.answered_without_one_row)}",
        f"unanswered, with a row   {len(audit.dropped_with_a_row)}",
        f"busy requests (load)     {tally.busy_requests}",
        f"idle before reuse, ms    {gaps(tally)}",
        f"wall time                {seconds:.1f} s",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=None,
        help="the gateway's HTTP_KEEP_ALIVE_SECONDS (default: its default)",
    )
    parser.add_argument("--gap", type=float, default=4.999, help="seconds idle between requests")
    parser.add_argument("--spread-ms", type=float, default=3.0, help="the gap's +- range, in ms")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--busy", type=int, default=8, help="connections of back-to-back load")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument(
        "--expiry",
        type=float,
        default=5.0,
        help="httpx: how long its pool keeps an idle connection (its default)",
    )
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()  # fmt: skip

    env = {
        "HTTP_MAX_CONNECTIONS_PER_CLIENT": "0",  # every client is 127.0.0.1
        # `serve` from this checkout, whichever one the interpreter has installed.
        "PYTHONPATH": os.pathsep.join(
            filter(None, (str(REPO / "src"), os.environ.get("PYTHONPATH")))
        ),
    }
    if args.keep_alive is not None:
        env["HTTP_KEEP_ALIVE_SECONDS"] = str(args.keep_alive)
    emulator = EmulatorServer(api_key=PROVIDER_KEY).start_in_thread()
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="keepalive-"))
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        gw = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/data/gw.db", env, process=True)
        try:
            started = time.monotonic()
            tally = asyncio.run(
                drive(
                    gw.base_url, gw.token, connections=args.connections, rounds=args.rounds,
                    gap_s=args.gap, spread_s=args.spread_ms / 1000, busy=args.busy,
                    seed=args.seed, client=args.client, expiry=args.expiry,
                )
            )  # fmt: skip
            seconds = time.monotonic() - started
            audit = check_audit(gw, tally)
            if args.keep:
                print(f"work directory: {tmp}")
        finally:
            stop_gateway(gw)
            emulator.stop()
    shown = "default" if args.keep_alive is None else f"{args.keep_alive:g} s"
    client = "raw" if args.client == "raw" else f"httpx (expiry {args.expiry:g} s)"
    print(f"keep-alive {shown}, {client}, gap {args.gap:g} s +- {args.spread_ms:g} ms, "
          f"{args.connections} connections x {args.rounds} rounds, {args.busy} busy")  # fmt: skip
    print(report(tally, audit, seconds))
    return 1 if tally.dropped or tally.timed_out or audit.answered_without_one_row else 0


if __name__ == "__main__":
    sys.exit(main())
