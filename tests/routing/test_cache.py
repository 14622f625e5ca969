"""Stale-if-error's cache: per tenant, keyed by the request as sent and the policy, bounded."""

from __future__ import annotations

from llm_gateway.chat import ChatRequest, ChatResponse, Message, TextPart, ToolCall, Usage
from llm_gateway.config.routing import StaleIfError
from llm_gateway.routing import StaleCache
from tests.state.cases import StoreCase


def _chat(text: str = "hello", **options: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", [TextPart(text)])], **options)  # type: ignore[arg-type]


ANSWER = ChatResponse(
    model="gpt", text="hi", tool_calls=[ToolCall("c1", "f", "{}")], usage=Usage(3, 4)
)


async def test_an_answer_is_kept_and_read_back_whole(store_case: StoreCase) -> None:
    cache = StaleCache(store_case.store, StaleIfError(enabled=True))
    key = cache.key(_chat(), requested="m", tenant="t", policy_revision="r1")
    assert await cache.load(key) is None
    cache.save_soon(key, ANSWER, now_ms=1_000)
    await cache.settled()
    assert await cache.load(key) == ANSWER


def test_the_key_follows_what_was_sent_and_the_policy_not_the_transport() -> None:
    cache = StaleCache(None, StaleIfError())  # type: ignore[arg-type]

    def key(chat: ChatRequest, tenant: str = "t", revision: str = "r1", asked: str = "m") -> str:
        return cache.key(chat, requested=asked, tenant=tenant, policy_revision=revision)

    base = key(_chat())
    assert key(_chat(stream=True, user="someone")) == base  # how it is delivered: the same
    assert key(_chat("hello!")) != base
    assert key(_chat(temperature=0.5)) != base
    assert key(_chat(), asked="chain") != base
    assert key(_chat(), revision="r2") != base  # a new policy: nothing old is served
    assert key(_chat(), tenant="other").split(":")[0] != base.split(":")[0]
    assert "t:" not in base  # tenant names are digested, so none can reach another's keys


async def test_a_tenant_keeps_at_most_its_bound_the_oldest_evicted(store_case: StoreCase) -> None:
    cache = StaleCache(store_case.store, StaleIfError(enabled=True, max_entries_per_tenant=2))
    keys = [
        cache.key(_chat(f"q{i}"), requested="m", tenant="t", policy_revision="") for i in range(3)
    ]
    other = cache.key(_chat("q0"), requested="m", tenant="u", policy_revision="")
    cache.save_soon(other, ANSWER, now_ms=1)
    for i, key in enumerate(keys):
        cache.save_soon(key, ANSWER, now_ms=1_000 + i)
        await cache.settled()
    assert [await cache.load(k) is not None for k in keys] == [False, True, True]
    assert await cache.load(other) == ANSWER  # another tenant's bound is its own


async def test_answers_too_large_or_failed_are_not_kept(store_case: StoreCase) -> None:
    cache = StaleCache(store_case.store, StaleIfError(enabled=True, max_entry_bytes=200))
    big = cache.key(_chat("big"), requested="m", tenant="t", policy_revision="")
    failed = cache.key(_chat("failed"), requested="m", tenant="t", policy_revision="")
    cache.save_soon(big, ChatResponse(model="m", text="x" * 500), now_ms=1)
    cache.save_soon(failed, ChatResponse(model="m", text="x", finish_reason="error"), now_ms=1)
    await cache.settled()
    assert await cache.load(big) is None
    assert await cache.load(failed) is None


async def test_an_entry_expires_after_its_ttl(store_case: StoreCase) -> None:
    cache = StaleCache(store_case.store, StaleIfError(enabled=True, ttl_seconds=0.05))
    key = cache.key(_chat(), requested="m", tenant="t", policy_revision="")
    cache.save_soon(key, ANSWER, now_ms=1)
    await cache.settled()
    await store_case.until_gone(f"entry:{key}")
    assert await cache.load(key) is None
