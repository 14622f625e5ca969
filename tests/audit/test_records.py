"""The audit row: digests instead of text, and fields any database can store."""

from __future__ import annotations

from llm_gateway.audit.records import audit_row, digest, storable
from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.pipeline.context import ChatCall, RequestContext
from llm_gateway.pipeline.record import request_record


async def _no_body() -> bytes:
    return b""


def _context(principal: Principal) -> RequestContext:
    return RequestContext(
        endpoint="openai",
        credentials=Credentials(),
        read_body=_no_body,
        payload=ChatCall(lambda body: None),  # type: ignore[arg-type]
        principal=principal,
    )


def test_storable_leaves_ordinary_text_alone() -> None:
    assert storable("alice@example.com") == "alice@example.com"
    assert storable("José Müller 山田") == "José Müller 山田"


def test_storable_replaces_nul_and_lone_surrogates() -> None:
    assert storable("a\x00b") == "a\ufffdb"
    cleaned = storable("x\ud800y")
    cleaned.encode("utf-8")  # would raise if the surrogate survived
    assert cleaned.startswith("x")
    assert cleaned.endswith("y")


def test_row_cleans_and_cuts_caller_controlled_fields() -> None:
    row = audit_row(
        request_record(
            _context(Principal(user_id="u\x00" + "x" * 400, role="user", team="t\ud800"))
        )
    )
    assert "\x00" not in row["user_id"]
    assert len(row["user_id"]) == 255
    row["team"].encode("utf-8")


def test_digest_separates_texts() -> None:
    assert digest(["ab", "c"])[0] != digest(["a", "bc"])[0]
    assert digest(["ab", "c"])[1] == 3


def test_the_row_says_how_long_a_rate_limit_queue_held_the_request() -> None:
    from llm_gateway.ratelimit import Admission

    ctx = _context(Principal(user_id="u", role="user"))
    assert audit_row(request_record(ctx))["queued_ms"] is None
    ctx.limits = Admission(queued_ms=412.5)
    assert audit_row(request_record(ctx))["queued_ms"] == 412.5
