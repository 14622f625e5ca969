"""Routing through the real server: fallback chains, a model's fallbacks, ``auto``, stickiness.

The gateway is given a routing file of its own: several models on the
emulator, each with its own upstream model id so that one prompt's
model-scoped directive (``"models": {"up-first": {"status": 500}}``) fails
one member of a chain and lets the next answer, and one model (``down``)
whose endpoint is a closed port. The official SDKs are the clients; what
happened is read from the audit row (``model``, ``route``, ``attempts``).

What each test shows is what issue 12 promises a caller: fallback in order on
the failures another model may not share, never on the caller's own 400; no
fallback once a stream's first byte is out; ``ROUTING_DEADLINE_MS`` bounding
the whole request; the policy deciding on every model tried; ``auto``'s rules
and experiments; and sticky conversations.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from llm_gateway.emulators import EmulatorServer
from llm_gateway.storage.models import AuditLog
from tests.e2e.conftest import (
    PROVIDER_KEY,
    Gateway,
    directive,
    free_port,
    start_gateway,
    stop_gateway,
)

#: The hanging model's timeout_ms: its attempt ends there, and the next model is tried.
HANG_TIMEOUT_MS = 800


def _model(name: str, endpoint: str, provider: str, timeout_ms: int = 5000, **extra: Any) -> str:
    lines = [
        f"    {name}:",
        f"      endpoint: {endpoint}",
        f"      provider: {provider}",
        f"      upstream_model: up-{name}",
        f"      timeout_ms: {timeout_ms}",
    ]
    if provider != "ollama":
        lines.append(f"      api_key: {PROVIDER_KEY}")
    lines += [f"      {key}: {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines)


def routing_file(emulator_url: str) -> str:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused
    v1 = f"{emulator_url}/v1"
    models = "\n".join(
        [
            _model("down", closed, "openai"),
            _model("hanger", v1, "openai", timeout_ms=HANG_TIMEOUT_MS),
            _model("first", v1, "openai"),
            _model("second", v1, "openai"),
            _model("third", v1, "anthropic"),
            _model("fourth", emulator_url, "ollama"),
            _model("solo", v1, "openai", fallbacks=["down", "second"]),
            _model("secret", v1, "openai"),
        ]
    )
    return f"""
routing:
  models:
{models}
  fallback_chains:
    production: [down, hanger, first, third, fourth, second]
    pair: [first, second]
    down-pair: [down, second]
    hang-pair: [hanger, second]
    guarded: [secret, second]
  capability_routing:
    enabled: true
    rules:
      - match: {{prompt_contains: [code]}}
        route_to: third
  experiments:
    - name: tone
      traffic_split: {{first: 70, fourth: 30}}
      match: {{prompt_contains: [poem]}}
"""


#: premium may use everything; limited may use the chain ``guarded`` and ``auto`` but,
#: of guarded's members, only ``second``; basic only the model ``second``; nameonly the
#: chain ``pair``'s name but none of its members.
ACCESS = """
access:
  tiers:
    premium: {models: ["*"], features: [streaming, tools, json_output]}
    limited: {models: [guarded, second, auto], features: [streaming]}
    basic: {models: [second], features: [streaming]}
    nameonly: {models: [pair], features: [streaming]}
  deanonymize_roles: [admin]
"""


@pytest.fixture(scope="module")
def routed(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("routing")
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        routing=routing_file(emulator.base_url), access=ACCESS,
    )  # fmt: skip
    try:
        yield gw
    finally:
        stop_gateway(gw)


def scoped(text: str = "hello", **per_model: dict[str, Any]) -> str:
    """A prompt whose directive applies ``per_model[name]`` to the model ``name`` only."""
    return directive(text, models={f"up-{name}": keys for name, keys in per_model.items()})


def chat(
    gw: Gateway, model: str, prompt: str, *, token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[str, str]:  # fmt: skip
    """One OpenAI SDK call: its request id and the answer's text."""
    raw = gw.openai(token).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], extra_headers=headers
    )
    return raw.headers["x-request-id"], raw.parse().choices[0].message.content or ""


def attempts(row: AuditLog) -> list[dict[str, Any]]:
    assert row.attempts is not None
    found = json.loads(row.attempts)
    assert isinstance(found, list)
    return found


def tried(row: AuditLog) -> list[tuple[str, int | None, str | None]]:
    """Each attempt's model, status and error code, in order."""
    return [(a["model"], a["status"], a["error_code"]) for a in attempts(row)]


def token(gw: Gateway, tier: str, user: str | None = None) -> str:
    return gw.token(user or f"{tier}-{uuid.uuid4().hex[:8]}", tier=tier)


# --- fallback -------------------------------------------------------------------------


def test_a_chain_falls_back_in_order_over_every_retryable_failure(routed: Gateway) -> None:
    """production = down, hanger, first, third, fourth, second: five ways to fail, then one
    that answers; each try is in the audit row, in order, and the last one served."""
    prompt = scoped(
        "hello there",
        hanger={"hang": True},
        first={"status": 500},
        third={"status": 429, "retry_after": 1},
        fourth={"malformed": True},
    )
    request_id, text = chat(routed, "production", prompt)
    assert text.endswith("hello there")
    row = routed.audit_row(request_id)
    assert tried(row) == [
        ("down", 502, "upstream_unreachable"),
        ("hanger", 504, "upstream_timeout"),
        ("first", 502, "upstream_error"),
        ("third", 429, "upstream_rate_limited"),
        ("fourth", 502, "upstream_malformed_response"),
        ("second", 200, None),
    ]
    latencies = [a["latency_ms"] for a in attempts(row)]
    assert all(isinstance(ms, int | float) and ms >= 0 for ms in latencies)
    assert latencies[1] >= HANG_TIMEOUT_MS * 0.9  # the hang was cut by its model's timeout
    assert (row.status, row.model, row.model_requested) == (200, "second", "production")
    assert row.upstream_model == "up-second"


def test_a_streamed_chain_falls_back_in_order_before_the_first_byte(routed: Gateway) -> None:
    """The same five failures before any event reached the caller (the Ollama model's
    malformed first line included), then the last model streams."""
    prompt = scoped(
        "streamed there",
        hanger={"hang": True},
        first={"status": 500},
        third={"status": 429, "retry_after": 1},
        fourth={"malformed": True},
    )
    with routed.openai().chat.completions.with_streaming_response.create(
        model="production", messages=[{"role": "user", "content": prompt}], stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert text.endswith("streamed there")
    row = routed.audit_row(request_id)
    assert [(model, code) for model, _, code in tried(row)] == [
        ("down", "upstream_unreachable"),
        ("hanger", "upstream_timeout"),
        ("first", "upstream_error"),
        ("third", "upstream_rate_limited"),
        ("fourth", "upstream_malformed_response"),
        ("second", None),
    ]
    assert (row.status, row.model, row.stream) == (200, "second", True)


def test_when_every_member_fails_the_caller_gets_the_last_failure(routed: Gateway) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        chat(routed, "pair", scoped("hi", first={"status": 500}, second={"status": 503}))
    error = raised.value
    assert error.status_code == 503
    assert isinstance(error.body, dict)
    assert error.body["code"] == "upstream_overloaded"
    row = routed.audit_row(error.response.headers["x-request-id"])
    assert tried(row) == [("first", 502, "upstream_error"), ("second", 503, "upstream_overloaded")]
    assert (row.status, row.error_code) == (503, "upstream_overloaded")


@pytest.mark.parametrize(
    ("chain", "failing", "keys", "status", "code"),
    [
        ("down-pair", "down", {}, 502, "upstream_unreachable"),
        ("hang-pair", "hanger", {"hang": True}, 504, "upstream_timeout"),
        ("pair", "first", {"status": 500}, 502, "upstream_error"),
        ("pair", "first", {"status": 503, "retry_after": 2}, 503, "upstream_overloaded"),
        ("pair", "first", {"status": 429, "retry_after": 1}, 429, "upstream_rate_limited"),
        ("pair", "first", {"malformed": True}, 502, "upstream_malformed_response"),
    ],
    ids=["refused", "hang", "500", "503", "429", "malformed"],
)
def test_each_retryable_failure_hands_over_to_the_next_model(
    routed: Gateway, chain: str, failing: str, keys: dict[str, Any], status: int, code: str
) -> None:
    """Through the Anthropic SDK (the front door translates to the OpenAI-format models)."""
    prompt = scoped("ping", **{failing: keys})
    raw = routed.anthropic().messages.with_raw_response.create(
        model=chain, max_tokens=50, messages=[{"role": "user", "content": prompt}]
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text.endswith("ping")
    row = routed.audit_row(raw.headers["x-request-id"])
    assert tried(row) == [(failing, status, code), ("second", 200, None)]
    assert row.model == "second"


def test_a_chain_is_recorded_as_a_chain(routed: Gateway) -> None:
    request_id, _ = chat(routed, "pair", "hello")
    row = routed.audit_row(request_id)
    assert tried(row) == [("first", 200, None)]
    assert row.route == "chain"


def test_the_callers_own_bad_request_is_never_retried(routed: Gateway) -> None:
    """The provider rejects the request (400): another model would reject it too."""
    with pytest.raises(openai.BadRequestError) as raised:
        chat(routed, "pair", scoped("hello", first={"status": 400}))
    error = raised.value
    assert error.status_code == 400
    assert isinstance(error.body, dict)
    assert error.body["code"] == "upstream_rejected_request"
    row = routed.audit_row(error.response.headers["x-request-id"])
    assert tried(row) == [("first", 400, "upstream_rejected_request")]
    assert (row.status, row.error_code) == (400, "upstream_rejected_request")


def test_a_model_named_alone_falls_back_through_its_own_fallbacks(routed: Gateway) -> None:
    """solo has ``fallbacks: [down, second]``."""
    request_id, text = chat(routed, "solo", scoped("hi solo", solo={"status": 500}))
    assert text.endswith("hi solo")
    row = routed.audit_row(request_id)
    assert tried(row) == [
        ("solo", 502, "upstream_error"),
        ("down", 502, "upstream_unreachable"),
        ("second", 200, None),
    ]
    assert (row.model, row.model_requested) == ("second", "solo")


def test_a_model_with_fallbacks_that_answers_is_the_only_attempt(routed: Gateway) -> None:
    request_id, _ = chat(routed, "solo", scoped("hi", second={"status": 500}))
    assert tried(routed.audit_row(request_id)) == [("solo", 200, None)]


# --- streams --------------------------------------------------------------------------


def test_openai_stream_falls_back_before_the_first_byte(routed: Gateway) -> None:
    prompt = scoped("streamed words", first={"status": 500})
    with routed.openai().chat.completions.with_streaming_response.create(
        model="pair", messages=[{"role": "user", "content": prompt}], stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert text.endswith("streamed words")
    row = routed.audit_row(request_id)
    assert tried(row) == [("first", 502, "upstream_error"), ("second", 200, None)]
    assert (row.status, row.model, row.stream) == (200, "second", True)


def test_anthropic_stream_falls_back_before_the_first_byte(routed: Gateway) -> None:
    prompt = scoped("streamed words", first={"status": 500})
    with routed.anthropic().messages.stream(
        model="pair", max_tokens=50, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        request_id = stream.response.headers["x-request-id"]
        text = "".join(stream.text_stream)
    assert text.endswith("streamed words")
    row = routed.audit_row(request_id)
    assert tried(row) == [("first", 502, "upstream_error"), ("second", 200, None)]
    assert (row.status, row.model) == (200, "second")


#: The first model's stream breaks after its first chunk; the second would answer whole,
#: so a retry after the first byte would show as a complete answer.
BROKEN = scoped("hi", first={"chunks": ["alpha ", "beta ", "gamma"], "truncate_after": 1})


def test_openai_stream_broken_after_its_first_chunk_is_not_retried(routed: Gateway) -> None:
    received: list[str] = []
    request_ids: list[str] = []
    create = routed.openai().chat.completions.with_streaming_response.create
    with (  # noqa: PT012 - the first delta arrives before the error
        pytest.raises(openai.APIError) as raised,
        create(model="pair", messages=[{"role": "user", "content": BROKEN}], stream=True) as resp,
    ):
        request_ids.append(resp.headers["x-request-id"])
        for chunk in resp.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == ["alpha "]
    assert not isinstance(raised.value, openai.APIConnectionError)
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "upstream_stream_interrupted"
    row = routed.audit_row(request_ids[0])
    assert [a["model"] for a in attempts(row)] == ["first"]
    assert (row.status, row.error_code, row.model) == (502, "upstream_stream_interrupted", "first")


def test_anthropic_stream_broken_after_its_first_chunk_is_not_retried(routed: Gateway) -> None:
    received: list[str] = []
    request_ids: list[str] = []
    with (  # noqa: PT012 - the first delta arrives before the error event
        pytest.raises(anthropic.APIStatusError) as raised,
        routed.anthropic().messages.stream(
            model="pair", max_tokens=50, messages=[{"role": "user", "content": BROKEN}]
        ) as stream,
    ):
        request_ids.append(stream.response.headers["x-request-id"])
        received.extend(stream.text_stream)
    assert received == ["alpha "]
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["code"] == "upstream_stream_interrupted"
    row = routed.audit_row(request_ids[0])
    assert [a["model"] for a in attempts(row)] == ["first"]
    assert (row.status, row.error_code) == (502, "upstream_stream_interrupted")


# --- the deadline ---------------------------------------------------------------------

DEADLINE_MS = 1500
SLOW_TIMEOUT_MS = 1000  # three of them: 3000 ms, twice the deadline


@pytest.fixture(scope="module")
def deadlined(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("deadline")
    v1 = f"{emulator.base_url}/v1"
    models = "\n".join(_model(n, v1, "openai", SLOW_TIMEOUT_MS) for n in ("s1", "s2", "s3"))
    routing = f"routing:\n  models:\n{models}\n  fallback_chains:\n    slow: [s1, s2, s3]\n"
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        {"ROUTING_DEADLINE_MS": str(DEADLINE_MS)}, routing=routing, access=ACCESS,
    )  # fmt: skip
    try:
        yield gw
    finally:
        stop_gateway(gw)


def test_the_deadline_ends_the_request_before_the_chain_is_exhausted(deadlined: Gateway) -> None:
    """s1 times out at 1000 ms, s2 is cut at the 1500 ms deadline, s3 is never tried."""
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        chat(deadlined, "slow", directive("wait", hang=True))
    elapsed_ms = (time.monotonic() - started) * 1000
    error = raised.value
    assert error.status_code == 504
    assert isinstance(error.body, dict)
    assert error.body["code"] == "upstream_timeout"
    assert elapsed_ms >= DEADLINE_MS * 0.9
    row = deadlined.audit_row(error.response.headers["x-request-id"])
    assert [a["model"] for a in attempts(row)] == ["s1", "s2"]
    assert tried(row)[0] == ("s1", 504, "upstream_timeout")
    assert (row.status, row.error_code) == (504, "upstream_timeout")


# --- the policy -----------------------------------------------------------------------


def test_fallback_never_reaches_a_member_the_policy_denies(routed: Gateway) -> None:
    """guarded = secret, second; the limited tier may use guarded but not secret. secret
    answers fine here: a premium caller is served by it, a limited one never reaches it."""
    request_id, _ = chat(routed, "guarded", "hello", token=token(routed, "premium"))
    assert tried(routed.audit_row(request_id)) == [("secret", 200, None)]

    request_id, _ = chat(routed, "guarded", "hello", token=token(routed, "limited"))
    row = routed.audit_row(request_id)
    assert tried(row) == [("second", 200, None)]
    assert row.model == "second"


def test_a_denied_member_is_not_tried_even_when_the_allowed_one_fails(routed: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        chat(
            routed, "guarded", scoped("hi", second={"status": 500}),
            token=token(routed, "limited"),
        )  # fmt: skip
    assert raised.value.status_code == 502
    row = routed.audit_row(raised.value.response.headers["x-request-id"])
    assert tried(row) == [("second", 502, "upstream_error")]


def _listed(gw: Gateway, tier: str) -> dict[str, str]:
    with gw.http() as http:
        response = http.get("/v1/models", headers={"authorization": f"Bearer {token(gw, tier)}"})
    assert response.status_code == 200
    return {entry["id"]: entry["kind"] for entry in response.json()["data"]}


def test_models_lists_chains_and_auto_to_a_caller_allowed_them(routed: Gateway) -> None:
    premium = _listed(routed, "premium")
    assert premium["production"] == "chain"
    assert premium["pair"] == "chain"
    assert premium["auto"] == "auto"
    assert premium["second"] == "model"
    assert _listed(routed, "limited") == {"guarded": "chain", "second": "model", "auto": "auto"}


def test_models_lists_no_chain_nor_auto_to_a_caller_not_allowed_them(routed: Gateway) -> None:
    assert _listed(routed, "basic") == {"second": "model"}


def test_models_does_not_list_a_chain_whose_members_are_all_denied(routed: Gateway) -> None:
    caller = token(routed, "nameonly")
    with pytest.raises(openai.PermissionDeniedError):
        chat(routed, "pair", "hi", token=caller)  # the chain cannot serve this caller
    assert "pair" not in _listed(routed, "nameonly")


# --- auto -----------------------------------------------------------------------------


def test_auto_sends_a_prompt_with_a_rules_word_to_the_rules_model(routed: Gateway) -> None:
    request_id, _ = chat(routed, "auto", "please review this Code for me")
    row = routed.audit_row(request_id)
    assert (row.model, row.route) == ("third", "rule")
    assert tried(row) == [("third", 200, None)]


def test_auto_matches_a_rules_word_only_on_word_boundaries(routed: Gateway) -> None:
    request_id, _ = chat(routed, "auto", "scan this barcode")
    row = routed.audit_row(request_id)
    assert row.route != "rule"
    assert attempts(row)[0]["model"] != "third"


def test_auto_never_routes_a_caller_to_a_model_the_policy_denies(routed: Gateway) -> None:
    """limited may use auto, but of the models only second: a rule's target (third) and
    the experiment's arms (first, fourth) fall through to what the caller may use."""
    caller = token(routed, "limited")
    ids = [
        chat(routed, "auto", prompt, token=caller)[0]
        for prompt in ("review this code", "write a poem", "hello")
    ]
    rows = routed.audit_rows(AuditLog.request_id.in_(ids))
    assert len(rows) == len(ids)
    for row in rows:
        assert tried(row) == [("second", 200, None)]
        assert row.route is not None
        assert not row.route.startswith(("rule", "experiment"))


EXPERIMENT_USERS = 200
#: 70/30 over 200 users: the first arm's share has a standard deviation of
#: sqrt(0.7 * 0.3 / 200) = 3.2 points; 10 points either side is over three of them.
SPLIT_TOLERANCE = 0.10


def test_an_experiment_splits_users_by_its_traffic_split(routed: Gateway) -> None:
    ids: list[str] = []
    for i in range(EXPERIMENT_USERS):
        user_token = routed.token(f"exp-user-{i}", tier="premium")
        ids.append(chat(routed, "auto", "write a poem about rain", token=user_token)[0])
    rows = routed.audit_rows(AuditLog.request_id.in_(ids))
    assert len(rows) == EXPERIMENT_USERS
    for row in rows:
        assert row.route == f"experiment:tone:{row.model}"
    arms = Counter(row.model for row in rows)
    assert set(arms) == {"first", "fourth"}
    share = arms["first"] / EXPERIMENT_USERS
    assert abs(share - 0.70) <= SPLIT_TOLERANCE, arms


def test_an_experiment_keeps_each_user_on_one_arm(routed: Gateway) -> None:
    for i in range(10):
        user_token = routed.token(f"stable-user-{i}", tier="premium")
        ids = [chat(routed, "auto", "a poem, please", token=user_token)[0] for _ in range(3)]
        rows = routed.audit_rows(AuditLog.request_id.in_(ids))
        assert len({(row.model, row.route) for row in rows}) == 1, [r.route for r in rows]
        assert rows[0].route is not None
        assert rows[0].route.startswith("experiment:tone:")


# --- sticky sessions ------------------------------------------------------------------


def test_a_conversation_stays_on_the_model_that_served_it_first(routed: Gateway) -> None:
    conversation = {"X-Conversation-Id": f"conv-{uuid.uuid4().hex}"}
    first_id, _ = chat(routed, "pair", scoped("one", first={"status": 500}), headers=conversation)
    assert tried(routed.audit_row(first_id)) == [
        ("first", 502, "upstream_error"),
        ("second", 200, None),
    ]
    # first has recovered: the conversation still goes to second
    again_id, _ = chat(routed, "pair", "two", headers=conversation)
    again = routed.audit_row(again_id)
    assert tried(again) == [("second", 200, None)]
    assert again.route == "sticky"
    # without the header (or in another conversation), the chain's order again
    plain_id, _ = chat(routed, "pair", "three")
    assert tried(routed.audit_row(plain_id)) == [("first", 200, None)]
    other = {"X-Conversation-Id": f"conv-{uuid.uuid4().hex}"}
    other_id, _ = chat(routed, "pair", "four", headers=other)
    assert tried(routed.audit_row(other_id)) == [("first", 200, None)]


def test_a_conversation_whose_model_fails_is_still_answered(routed: Gateway) -> None:
    """Sticky while healthy: the conversation's model failing hands over to the chain."""
    conversation = {"X-Conversation-Id": f"conv-{uuid.uuid4().hex}"}
    chat(routed, "pair", scoped("one", first={"status": 500}), headers=conversation)
    request_id, text = chat(
        routed, "pair", scoped("two", second={"status": 500}), headers=conversation
    )
    assert text.endswith("two")
    row = routed.audit_row(request_id)
    assert tried(row) == [("second", 502, "upstream_error"), ("first", 200, None)]
    assert row.model == "first"
