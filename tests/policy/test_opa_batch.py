"""A batch of decisions from OPA in one request: what a listing of N models costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_gateway.policy.opa import OpaPolicy
from tests.policy.opa_server import OpaServer, Reply
from tests.policy.test_opa import document

PATH = "/v1/data/llm/authz/decision"


def _by_model(path: str, doc: Any) -> Reply:
    """Allows gpt-4, denies claude with a reason, and is undefined for anything else."""
    model = doc["request"]["model"]
    if model == "gpt-4":
        return Reply.result({"allow": True})
    if model == "claude":
        return Reply.result({"allow": False, "reasons": ["not for you"]})
    return Reply.undefined()


@pytest.fixture
async def opa() -> AsyncIterator[OpaServer]:
    async with OpaServer(_by_model) as server:
        yield server


async def test_many_documents_are_decided_in_one_request(opa: OpaServer) -> None:
    policy = OpaPolicy(opa.url, PATH, timeout_s=2.0, retries=0)
    try:
        docs = [document(model=m) for m in ("gpt-4", "claude", "unknown", "gpt-4")]
        decisions = await policy.decide_many(docs)
    finally:
        await policy.aclose()
    assert opa.count == 1
    (sent,) = opa.requests
    assert sent.path == "/v1/query"
    assert sent.body["input"]["batch"] == docs
    assert [d.allow for d in decisions] == [True, False, False, True]
    assert decisions[1].reasons == ("not for you",)
    assert decisions[2].error is None  # undefined denies, as for one decision


async def test_an_unusable_batch_answer_denies_every_document(opa: OpaServer) -> None:
    opa.answer(Reply.internal_error())
    policy = OpaPolicy(opa.url, PATH, timeout_s=2.0, retries=0)
    try:
        decisions = await policy.decide_many([document(), document(model="claude")])
    finally:
        await policy.aclose()
    assert [d.allow for d in decisions] == [False, False]
    assert all(d.error is not None for d in decisions)


async def test_cached_decisions_are_not_asked_again_and_one_document_is_one_decision(
    opa: OpaServer,
) -> None:
    policy = OpaPolicy(opa.url, PATH, timeout_s=2.0, retries=0, cache_seconds=60)
    try:
        await policy.decide(document(model="gpt-4"))  # cached by the Data API path
        decisions = await policy.decide_many([document(model="gpt-4"), document(model="claude")])
        (single,) = await policy.decide_many([document(model="other")])
    finally:
        await policy.aclose()
    assert [d.allow for d in decisions] == [True, False]
    assert single.allow is False
    paths = [r.path for r in opa.requests]
    assert paths == [PATH, "/v1/query", PATH]
    (asked,) = opa.requests[1].body["input"]["batch"]  # only what the cache did not have
    assert asked["request"]["model"] == "claude"
