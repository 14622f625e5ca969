"""No answer without its audit row: the gateway killed under load, the database gone, the disk full.

Real gateway processes under concurrent JSON and streamed load. After each
fault, and a restart where the fault killed the gateway, every request whose
caller got an answer, or any byte of a streamed one, has exactly one audit row,
saying what the caller got: 200, and for a stream cut by the kill the
``stream_unfinished`` code of its opening row (written to the spool before its
first byte). Refusals (503 ``audit_unavailable`` while nothing can be recorded)
have at most one row, with their status.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from llm_gateway.audit.records import STREAM_UNFINISHED
from llm_gateway.emulators import EmulatorServer
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway
from tests.e2e.faults import Load, Outcomes, TcpProxy, fill, mount_tmpfs, unmount
from tests.e2e.test_audit_postgres import db_upgrade
from tests.observability.receiver import Receiver

#: Faster refusals while nothing can be recorded, so that the load moves on.
ENV = {"AUDIT_WAIT_SECONDS": "3", "AUDIT_SPOOL_AFTER_SECONDS": "1"}


def _start(tmp: Path, emulator: EmulatorServer, database_url: str) -> Gateway:
    return start_gateway(tmp, emulator.base_url, database_url, ENV, process=True)


def _kill(gateway: Gateway) -> None:
    assert gateway.process is not None
    gateway.process.kill()
    gateway.process.wait()


def _until(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _rows(gateway: Gateway) -> dict[str, list[AuditLog]]:
    found: dict[str, list[AuditLog]] = defaultdict(list)
    for row in gateway.audit_rows():
        found[row.request_id].append(row)
    return found


def _rows_of(gateway: Gateway, outcomes: Outcomes) -> dict[str, list[AuditLog]]:
    """The rows, once every answered request has one (the spool replays in the background)."""
    wanted = outcomes.answered()
    assert wanted, "the load got no answer at all"
    _until(lambda: wanted <= set(_rows(gateway)), "every answered request has its row")
    return _rows(gateway)


def _check(outcomes: Outcomes, rows: dict[str, list[AuditLog]]) -> None:
    duplicated = sorted(r for r, found in rows.items() if len(found) > 1)
    assert not duplicated, f"{len(duplicated)} requests stored twice"
    for request_id, status in outcomes.json.items():
        found = rows.get(request_id, [])
        if status == 200:
            assert len(found) == 1, f"answered {request_id} has no row"
        if found:
            assert found[0].status == status, f"{request_id}: caller saw {status}"
    for request_id, ended in outcomes.streamed.items():
        (row,) = rows[request_id]
        assert row.status == 200
        if ended:  # the end reached the caller: the stream's own row, not its opening
            assert row.error_code is None, f"{request_id}: {row.error_code}"
        else:
            assert row.error_code in (None, STREAM_UNFINISHED)


def _check_after_restart(
    tmp: Path, emulator: EmulatorServer, database_url: str, outcomes: Outcomes
) -> None:
    """A gateway started where one was killed adopts its spool: then every answer has its row."""
    successor = _start(tmp, emulator, database_url)
    try:
        _check(outcomes, _rows_of(successor, outcomes))
    finally:
        stop_gateway(successor)


def _load_until(load: Load, more: int, what: str) -> None:
    target = load.count() + more
    _until(lambda: load.count() >= target, what)


def _answered_json(outcomes: Outcomes) -> int:
    with outcomes.lock:
        return sum(1 for status in outcomes.json.values() if status == 200)


# --- SIGKILL with the database up ------------------------------------------------------


def test_sigkill_under_load_leaves_every_answer_its_one_row(
    database_url: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    if database_url.startswith("postgresql"):
        assert db_upgrade(database_url, tmp_path).returncode == 0
    gateway = _start(tmp_path, emulator, database_url)
    with Load(gateway) as load:
        _load_until(load, 60, "requests under load")
        _kill(gateway)
    outcomes = load.outcomes
    cut = [r for r, ended in outcomes.streamed.items() if not ended]
    assert cut, "no stream was in flight when the gateway was killed"
    successor = _start(tmp_path, emulator, database_url)  # adopts the dead one's spool
    try:
        rows = _rows_of(successor, outcomes)
        _check(outcomes, rows)
        assert {rows[r][0].error_code for r in cut} == {STREAM_UNFINISHED}
    finally:
        stop_gateway(successor)


# --- PostgreSQL gone, and back ---------------------------------------------------------


@pytest.fixture
def proxied(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, TcpProxy]]:
    """The test's database, migrated, behind a proxy the test can cut."""
    assert db_upgrade(postgres_url, tmp_path).returncode == 0
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.restore()
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), proxy
    finally:
        proxy.cut()


def test_while_postgres_is_down_callers_are_answered_and_the_rows_arrive_when_it_returns(
    proxied: tuple[str, TcpProxy],
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    url, proxy = proxied
    gateway = _start(tmp_path, emulator, url)
    try:
        with Load(gateway) as load:
            _load_until(load, 20, "requests before the outage")
            proxy.cut()
            before = _answered_json(load.outcomes)
            _until(
                lambda: _answered_json(load.outcomes) >= before + 30,
                "JSON answers while the database is down",
            )
            assert gateway.http().get("/ready").json()["checks"]["audit"].startswith("spooling")
            proxy.restore()
            _load_until(load, 20, "requests after the outage")
        _check(load.outcomes, _rows_of(gateway, load.outcomes))
    finally:
        stop_gateway(gateway)


def test_a_gateway_killed_while_postgres_is_down_loses_no_answered_request(
    proxied: tuple[str, TcpProxy],
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    url, proxy = proxied
    gateway = _start(tmp_path, emulator, url)
    with Load(gateway) as load:
        _load_until(load, 20, "requests before the outage")
        proxy.cut()
        _load_until(load, 40, "requests during the outage")
        _kill(gateway)
    proxy.restore()
    _check_after_restart(tmp_path, emulator, url, load.outcomes)


# --- SQLite on a disk that fills up ----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/data`` on a tmpfs of its own, 24 MB."""
    data = tmp_path / "data"
    if not mount_tmpfs(data, 24):
        pytest.skip("mounting a tmpfs needs root (mount -t tmpfs): the disk-full test needs one")
    try:
        yield data
    finally:
        unmount(data)


def test_a_full_disk_refuses_rather_than_answer_without_a_row_and_a_kill_loses_nothing(
    small_disk: Path, emulator: EmulatorServer, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{small_disk}/gateway.db"
    gateway = _start(tmp_path, emulator, database_url)
    with Load(gateway) as load:
        _load_until(load, 20, "requests before the disk fills")
        filler = fill(small_disk)
        _load_until(load, 20, "requests on a full disk")
        with load.outcomes.lock:
            refused = [s for s in load.outcomes.json.values() if s == 503]
        assert refused, "nothing was refused on a full disk"
        ready = gateway.http().get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["audit"] == "failing: disk full"
        _kill(gateway)
    filler.unlink()
    _check_after_restart(tmp_path, emulator, database_url, load.outcomes)


# --- the spool filling is an alert -----------------------------------------------------


def test_a_spool_filling_during_an_outage_is_an_alert(
    proxied: tuple[str, TcpProxy],
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    url, proxy = proxied
    receiver = Receiver().start()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "alerts.yaml").write_text(
        "alerts:\n"
        "  check_seconds: 0.2\n"
        "  destinations:\n"
        "    oncall:\n"
        "      format: pagerduty\n"
        f"      url: '{receiver.url}'\n"
        "      routing_key: test-routing-key\n"
        "      events: [audit_spool]\n"
    )  # fmt: skip
    env = {**ENV, "AUDIT_SPOOL_MAX_MB": "1"}
    gateway = start_gateway(tmp_path, emulator.base_url, url, env, process=True)
    try:
        assert receiver.received == []
        proxy.cut()
        with Load(gateway, 8, streams=False):
            (alert,) = receiver.wait_for(1, timeout_s=60)  # past 80% of its 1 MB
        assert alert.body["payload"]["class"] == "audit_spool"
        assert "AUDIT_SPOOL_MAX_MB" in alert.body["payload"]["summary"]
        proxy.restore()
    finally:
        stop_gateway(gateway)
        receiver.stop()
