"""The audit spool: rows the database could not take, kept on local disk until it can.

Each gateway process owns one directory under the spool root, held by an
exclusive ``flock`` on its ``lock`` file while the process lives. In it:

- ``rows-<n>.jsonl``: audit rows, one JSON object per line, appended in whole
  batches (and fsynced first in strict mode). The highest ``n`` is the segment
  being appended to; the others wait to be replayed.
- ``open.jsonl``: the opening row of every stream whose first byte has been
  released, written before that byte. While the process lives these are never
  replayed (the stream's own row follows); if it dies, they are what the caller
  got: a row for the stream, marked ``stream_unfinished``. Openings are group
  committed: those asked for while a write (and its fsync) is on its way go
  together in the next one, so concurrent streams share one fsync instead of
  paying one each (in strict mode the fsyncs were a quarter of the CPU of
  streaming at 16 connections).

Replay (:meth:`Spool.drain`) starts a new segment, then inserts the older ones
into the database in order, a chunk at a time, skipping request ids already
stored (a commit that timed out may have landed after all), and deletes each
segment once it is in. A directory whose lock is free belongs to a process that
died: the next drain adopts it, replays its rows and then its openings, and
removes it. Every file operation runs on the spool's one thread, in order, off
the event loop.

The spool is bounded on disk by ``max_bytes``; :class:`SpoolFull` says a batch
would pass it, which the writer turns into a refusal (no answer without a record).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from llm_gateway.audit.sinks import Row
from llm_gateway.storage.models import AuditLog, UTCDateTime

log = logging.getLogger(__name__)

#: Columns the chain fills in at insertion; a spooled row is linked again when replayed.
_LINKED = ("seq", "chain_prev", "chain_hash")
_TIMES = tuple(c.name for c in AuditLog.__table__.columns if isinstance(c.type, UTCDateTime))
_OPENINGS = "open.jsonl"
#: A segment is closed for replay once it holds this much, even while the database is up.
SEGMENT_BYTES = 16 << 20

Insert = Callable[[list[Row]], Awaitable[None]]


class SpoolFull(Exception):
    """The spool has reached its size limit: the rows were not written."""


def encode(row: Row) -> bytes:
    return orjson.dumps({k: v for k, v in row.items() if k not in _LINKED}) + b"\n"


def decode(line: bytes) -> Row | None:
    """A spooled row, or None for a line a crash cut short."""
    try:
        row: Row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    for name in _TIMES:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = datetime.fromisoformat(value)
    return row


class Spool:
    def __init__(self, root: Path, *, max_bytes: int, fsync: bool, batch_max: int = 500) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.fsync = fsync  # strict mode: on disk, not only in the page cache, before we return
        self.batch_max = batch_max
        self.directory = root / uuid.uuid4().hex
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-spool")
        self._lock: IO[bytes] | None = None
        self._segment: IO[bytes] | None = None
        self._segment_no = 0
        self._openings_file: IO[bytes] | None = None
        self._openings: dict[str, bytes] = {}  # request id -> its line in open.jsonl
        # Openings asked for while a write is on its way: (request id, line, its caller).
        self._waiting: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._bytes = 0  # everything under root, as this process last counted it
        self._counts: dict[str, int] = {}  # rows in each of this process's segments

    @property
    def rows(self) -> int:
        """Rows in this process's segments, not yet replayed."""
        return sum(self._counts.values())

    # --- from the event loop -----------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes on disk under the spool's root (this process's and any left behind)."""
        return self._bytes

    def open(self) -> None:
        """Make and lock this process's directory (at start-up: a few file operations)."""
        if self._lock is None:
            self._open()

    async def append(self, rows: list[Row]) -> None:
        """Write ``rows`` to the current segment (raises SpoolFull, OSError)."""
        data = b"".join(encode(row) for row in rows)
        await self._run(self._append, data, len(rows))

    async def opened(self, row: Row) -> None:
        """Record a stream's opening row before its first byte is released (raises
        SpoolFull, OSError), in the next group write."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._waiting.append((str(row["request_id"]), encode(row), written))
        if self._writer is None:
            self._writer = loop.create_task(self._write_openings())
        await written

    async def _write_openings(self) -> None:
        """Write what waits, one group at a time, until nothing does."""
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    problems = await self._run(self._open_streams, [g[:2] for g in group])
                except OSError as exc:
                    problems = [exc] * len(group)
                for (*_, written), problem in zip(group, problems, strict=True):
                    if written.done():  # its caller went away meanwhile
                        continue
                    if problem is None:
                        written.set_result(None)
                    else:
                        written.set_exception(problem)
        finally:
            self._writer = None

    def settled(self, request_id: str) -> None:
        """The stream's own row is stored: its opening will not be needed."""
        self._openings.pop(request_id, None)

    async def drain(self, insert: Insert) -> bool:
        """Replay every closed segment and any dead process's spool; True when none is left.

        ``insert`` stores a chunk of rows in one transaction, skipping request ids
        already stored; an exception stops the drain, with what is left kept.
        """
        await self._run(self._rotate)
        for path in await self._run(self._closed_segments):
            if not await self._replay(path, insert):
                return False
            await self._run(self._remove, path)
        for directory in await self._run(self._orphans):
            if not await self._adopt(directory, insert):
                return False
        await self._run(self._compact_openings)
        return not await self._run(self._closed_segments)

    async def close(self) -> None:
        await self._run(self._close)
        self._thread.shutdown(wait=True)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def _replay(self, path: Path, insert: Insert) -> bool:
        for chunk in await self._run(self._chunks, path):
            try:
                await insert(chunk)
            except Exception:  # noqa: BLE001 - the database is still away: try later
                return False
        return True

    async def _adopt(self, directory: Path, insert: Insert) -> bool:
        lock = await self._run(_try_lock, directory / "lock")
        if lock is None:
            return True  # alive after all (or just starting): not ours
        try:
            segments = await self._run(_segments, directory)
            for path in [*segments, directory / _OPENINGS]:  # rows first: they win over openings
                if not await self._replay(path, insert):
                    return False
                await self._run(self._remove, path)
            log.warning("audit spool: replayed the rows of a gateway process that stopped")
            await self._run(shutil.rmtree, directory, True)
            return True
        finally:
            await self._run(lock.close)

    # --- on the spool's thread ---------------------------------------------------

    def _open(self) -> None:
        # Made under a hidden name and renamed once locked, so that no other process
        # takes it for a dead one's in between.
        staging = self.root / f".{self.directory.name}"
        staging.mkdir(parents=True)
        lock = _try_lock(staging / "lock")
        assert lock is not None, "a new spool directory is locked by nobody"
        staging.rename(self.directory)
        self._lock = lock
        self._segment_no = 1
        self._segment = (self.directory / _segment_name(1)).open("ab")
        self._openings_file = (self.directory / _OPENINGS).open("ab")
        _sync_directory(self.root)
        self._bytes = _size(self.root)

    def _append(self, data: bytes, count: int) -> None:
        assert self._segment is not None, "the spool is not open"
        if self._bytes + len(data) > self.max_bytes:
            self._bytes = _size(self.root)  # a replay may have freed room
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(self._full())
        _write(self._segment, data, self.fsync)
        self._bytes += len(data)
        name = _segment_name(self._segment_no)
        self._counts[name] = self._counts.get(name, 0) + count
        if self._segment.tell() >= SEGMENT_BYTES:
            self._rotate()

    def _open_streams(self, openings: list[tuple[str, bytes]]) -> list[Exception | None]:
        """Append the openings that fit in one write (and one fsync); each one's refusal."""
        assert self._openings_file is not None, "the spool is not open"
        problems: list[Exception | None] = []
        accepted: list[tuple[str, bytes]] = []
        size = self._bytes
        for request_id, line in openings:
            if size + len(line) > self.max_bytes:
                problems.append(SpoolFull(self._full()))
                continue
            size += len(line)
            accepted.append((request_id, line))
            problems.append(None)
        if accepted:
            _write(self._openings_file, b"".join(line for _, line in accepted), self.fsync)
            self._openings.update(accepted)
            self._bytes = size
        return problems

    def _full(self) -> str:
        return f"the audit spool is full ({self.max_bytes >> 20} MB, AUDIT_SPOOL_MAX_MB)"

    def _rotate(self) -> None:
        if self._segment is None or self._segment.tell() == 0:
            return
        self._segment.close()
        self._segment_no += 1
        self._segment = (self.directory / _segment_name(self._segment_no)).open("ab")
        _sync_directory(self.directory)

    def _closed_segments(self) -> list[Path]:
        return [p for p in _segments(self.directory) if p.name != _segment_name(self._segment_no)]

    def _orphans(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(
            Path(e.path) for e in entries
            if e.is_dir() and not e.name.startswith(".") and e.path != str(self.directory)
        )  # fmt: skip

    def _chunks(self, path: Path) -> list[list[Row]]:
        rows = list(_read(path))
        return [rows[i : i + self.batch_max] for i in range(0, len(rows), self.batch_max)]

    def _remove(self, path: Path) -> None:
        if path.parent == self.directory:
            self._counts.pop(path.name, None)
        path.unlink(missing_ok=True)
        _sync_directory(path.parent)
        self._bytes = _size(self.root)

    def _compact_openings(self) -> None:
        """Rewrite ``open.jsonl`` with only the streams still running (atomically)."""
        assert self._openings_file is not None, "the spool is not open"
        if self._openings_file.tell() < 1 << 20:
            return
        path = self.directory / _OPENINGS
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            _write(handle, b"".join(list(self._openings.values())), True)
        self._openings_file.close()
        temporary.replace(path)
        _sync_directory(self.directory)
        self._openings_file = path.open("ab")
        self._bytes = _size(self.root)

    def _close(self) -> None:
        for handle in (self._segment, self._openings_file):
            if handle is not None:
                handle.close()
        self._segment = self._openings_file = None
        if not self._openings and not self.rows:  # streams all settled, rows all stored
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()  # a directory left behind is adopted by the next process
            self._lock = None


def _segment_name(number: int) -> str:
    return f"rows-{number:06d}.jsonl"


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("rows-*.jsonl"))


def _read(path: Path) -> Iterator[Row]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    seen: dict[str, Row] = {}
    for line in data.splitlines():
        if not line.strip():
            continue
        row = decode(line)
        if row is None:
            log.error("audit spool: a line of %s was cut short by a crash; skipped", path.name)
            continue
        seen[str(row.get("request_id"))] = row  # the last word on a request wins
    yield from seen.values()


def _write(handle: IO[bytes], data: bytes, fsync: bool) -> None:
    handle.write(data)
    handle.flush()
    if fsync:
        os.fdatasync(handle.fileno())


def _try_lock(path: Path) -> IO[bytes] | None:
    """``path`` opened and exclusively locked, or None when another process holds it."""
    try:
        handle = path.open("ab")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
