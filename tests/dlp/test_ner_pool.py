"""NER's fair queue: tenants take turns, callers within a tenant take turns, piece by piece."""

from __future__ import annotations

import asyncio

import pytest

from llm_gateway.dlp.ner_pool import FairQueue, Job, NerBusy


async def _served(queue: FairQueue, count: int) -> list[tuple[str, str]]:
    order = []
    for _ in range(count):
        job, piece = await queue.next_piece()
        job.answered(piece, [])
        order.append(job.key)
    return order


async def test_a_small_request_waits_for_one_piece_not_for_a_large_request() -> None:
    queue = FairQueue(caller_chars=10**9)
    big = Job.of(("acme", "flood"), ["word " * 4000], piece_chars=100)  # 200 pieces
    small = Job.of(("other", "bob"), ["hello there"], piece_chars=100)
    queue.put(big)
    queue.put(small)
    order = await _served(queue, 3)
    assert order == [("acme", "flood"), ("other", "bob"), ("acme", "flood")]
    assert small.done.done()
    assert not big.done.done()


async def test_callers_of_one_tenant_take_turns_and_tenants_share_evenly() -> None:
    queue = FairQueue(caller_chars=10**9)
    for key in [("t1", "a"), ("t1", "b"), ("t2", "c")]:
        queue.put(Job.of(key, ["x " * 50] * 3, piece_chars=100))
    order = await _served(queue, 6)
    # t1 and t2 alternate; within t1, a and b alternate.
    assert [tenant for tenant, _ in order] == ["t1", "t2", "t1", "t2", "t1", "t2"]
    assert [caller for tenant, caller in order if tenant == "t1"] == ["a", "b", "a"]


async def test_a_caller_with_too_much_waiting_is_refused_at_once() -> None:
    queue = FairQueue(caller_chars=1000)
    queue.put(Job.of(("t", "flood"), ["x" * 900], piece_chars=100))
    with pytest.raises(NerBusy):
        queue.put(Job.of(("t", "flood"), ["x" * 200], piece_chars=100))
    queue.put(Job.of(("t", "other"), ["x" * 200], piece_chars=100))  # others are not refused
    # One request alone is never refused, whatever its size.
    queue.put(Job.of(("u", "single"), ["x" * 5000], piece_chars=100))


async def test_what_is_handed_out_no_longer_counts_as_waiting() -> None:
    queue = FairQueue(caller_chars=1000)
    first = Job.of(("t", "c"), ["x" * 900], piece_chars=300)
    queue.put(first)
    await _served(queue, 3)
    queue.put(Job.of(("t", "c"), ["x" * 900], piece_chars=300))


async def test_a_dropped_job_leaves_the_queue_and_frees_its_callers_place() -> None:
    queue = FairQueue(caller_chars=1000)
    dropped = Job.of(("t", "c"), ["x" * 900], piece_chars=100)
    kept = Job.of(("u", "d"), ["y" * 100], piece_chars=100)
    queue.put(dropped)
    queue.put(kept)
    queue.drop(dropped)
    job, _ = await queue.next_piece()
    assert job is kept
    queue.put(Job.of(("t", "c"), ["x" * 900], piece_chars=100))


async def test_a_worker_waits_for_work_and_an_empty_job_needs_none() -> None:
    queue = FairQueue(caller_chars=1000)
    empty = Job.of(("t", "c"), ["   ", ""], piece_chars=100)
    queue.put(empty)
    assert empty.done.done()
    waiting = asyncio.create_task(queue.next_piece())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    job = Job.of(("t", "c"), ["hi"], piece_chars=100)
    queue.put(job)
    got, piece = await asyncio.wait_for(waiting, 5)
    assert (got, piece.content, piece.offset) == (job, "hi", 0)


async def test_answers_map_back_to_their_texts_offsets() -> None:
    job = Job.of(("t", "c"), ["aaaa bbbb cccc", "dd"], piece_chars=5)
    queue = FairQueue(caller_chars=100)
    queue.put(job)
    while not job.done.done():
        got, piece = await queue.next_piece()
        got.answered(piece, [("PERSON", 0, 4, 0.9)])
    starts = [[s for _, s, _, _ in found] for found in job.results]
    assert starts == [[0, 5, 10], [0]]
