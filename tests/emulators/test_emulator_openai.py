"""The OpenAI emulator, driven by the official ``openai`` SDK (and raw HTTP for wire details)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from llm_gateway.emulators import EmulatorServer, emulator_state

Directive = Callable[..., str]


def _user(content: str) -> list[Any]:
    return [{"role": "user", "content": content}]


def test_text_completion_echoes_and_counts_words(oai: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "be brief"}, *_user("  hello world  ")]
    completion = oai.chat.completions.create(model="gpt-test", messages=messages)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert completion.system_fingerprint
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello world"
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert completion.usage.total_tokens == 7


def test_directive_is_removed_from_echo_and_token_count(
    oai: openai.OpenAI, directive: Directive
) -> None:
    plain = oai.chat.completions.create(model="m", messages=_user(directive("one two")))
    assert plain.choices[0].message.content == "Echo: one two"
    assert plain.usage is not None
    assert plain.usage.prompt_tokens == 2

    scripted = oai.chat.completions.create(
        model="m", messages=_user(directive(reply="Scripted answer", finish="length"))
    )
    assert scripted.choices[0].message.content == "Scripted answer"
    assert scripted.choices[0].finish_reason == "length"


def test_malformed_directive_is_plain_text(oai: openai.OpenAI) -> None:
    text = 'hi [[emulate {"reply": oops}]]'
    completion = oai.chat.completions.create(model="m", messages=_user(text))
    assert completion.choices[0].message.content == "Echo: " + text


def test_stream_sends_role_then_word_deltas_then_finish(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="m", messages=_user("alpha beta gamma"), stream=True)
    chunks = list(stream)

    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    deltas = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert deltas == ["Echo: ", "alpha ", "beta ", "gamma"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # no usage chunk unless asked for


def test_stream_include_usage_adds_final_usage_chunk(http: httpx.Client, api_key: str) -> None:
    body = {
        "model": "m",
        "messages": _user("a b c"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert all("usage" in e and e["usage"] is None for e in events[:-1])
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["prompt_tokens"] == 3
    assert events[-1]["usage"]["completion_tokens"] == 4
    assert events[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_explicit_chunks_are_streamed_exactly(oai: openai.OpenAI, directive: Directive) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=_user(directive(chunks=["Hel", "lo", ", wor", "ld"])), stream=True
    )
    deltas = [c.choices[0].delta.content for c in stream][1:-1]
    assert deltas == ["Hel", "lo", ", wor", "ld"]


def test_tool_call_then_tool_result_round_trip(oai: openai.OpenAI, directive: Directive) -> None:
    ask = directive("weather?", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    first = oai.chat.completions.create(model="m", messages=_user(ask))
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}

    messages: list[Any] = [
        *_user(ask),
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = oai.chat.completions.create(model="m", messages=messages)
    assert second.choices[0].message.content == "Tool said: sunny, 21C"
    assert second.choices[0].finish_reason == "stop"


def test_streamed_tool_call_uses_incremental_deltas(
    oai: openai.OpenAI, directive: Directive
) -> None:
    arguments = {"query": "emulators and gateways", "limit": 5}
    ask = directive("search", tool_calls=[{"name": "search", "arguments": arguments}])
    chunks = list(oai.chat.completions.create(model="m", messages=_user(ask), stream=True))
    tool_deltas = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]

    head, rest = tool_deltas[0], tool_deltas[1:]
    assert head.index == 0
    assert head.id
    assert head.id.startswith("call_")
    assert head.type == "function"
    assert head.function is not None
    assert (head.function.name, head.function.arguments) == ("search", "")
    assert len(rest) > 1
    assert all(
        d.index == 0 and d.id is None and d.function and d.function.name is None for d in rest
    )
    assert json.loads("".join(d.function.arguments or "" for d in rest if d.function)) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    with oai.chat.completions.stream(model="m", messages=_user(ask)) as helper:
        final = helper.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert json.loads(calls[0].function.arguments) == arguments


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error"),
        (400, openai.BadRequestError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
    ],
)
def test_status_directive_raises_typed_sdk_error(
    oai: openai.OpenAI,
    directive: Directive,
    status: int,
    error_class: type[openai.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(error_class) as caught:
        oai.chat.completions.create(
            model="m", messages=_user(directive(status=status, retry_after=7))
        )
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == error_type
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.response.headers["retry-after"] == "7"


def test_error_overrides_and_raw_error_body(oai: openai.OpenAI, directive: Directive) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="m",
            messages=_user(
                directive(status=429, error_type="insufficient_quota", error_message="no money")
            ),
        )
    assert caught.value.body == {
        "message": "no money",
        "type": "insufficient_quota",
        "param": None,
        "code": "rate_limit_exceeded",
    }

    with pytest.raises(openai.InternalServerError) as raw:
        oai.chat.completions.create(
            model="m", messages=_user(directive(status=502, error_body="<html>Bad Gateway</html>"))
        )
    assert raw.value.response.text == "<html>Bad Gateway</html>"


def test_authentication(emulator: EmulatorServer, http: httpx.Client) -> None:
    wrong = openai.OpenAI(base_url=emulator.base_url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="m", messages=_user("hi"))
    assert caught.value.code == "invalid_api_key"

    missing = http.post("/v1/chat/completions", json={"model": "m", "messages": _user("hi")})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"


def test_sdk_sees_bad_request_for_empty_messages(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="m", messages=[])
    assert caught.value.code == "empty_array"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": _user("x")}, None),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"model": "m", "messages": [*_user("x"), {"role": "tool", "content": "r"}]},
            "messages[1].tool_call_id",
        ),
        (
            {
                "model": "m",
                "messages": [
                    *_user("x"),
                    {"role": "tool", "content": "r", "tool_call_id": "call_1"},
                ],
            },
            "messages.[1].role",
        ),
        (
            {
                "model": "m",
                "messages": [
                    *_user("x"),
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": {}},
                            }
                        ],
                    },
                ],
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"model": "m", "messages": _user("x"), "n": 2}, "n"),
        (
            {"model": "m", "messages": _user("x"), "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        ({"model": "m", "messages": _user("x"), "tool_choice": "auto"}, "tool_choice"),
    ],
)
def test_invalid_requests_are_rejected_like_the_api(
    http: httpx.Client, api_key: str, body: dict[str, Any], param: str | None
) -> None:
    response = http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_non_json_body_is_rejected(http: httpx.Client, api_key: str) -> None:
    response = http.post(
        "/v1/chat/completions", content=b"{nope", headers={"authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 400
    assert "parse the JSON body" in response.json()["error"]["message"]


def test_assistant_tool_calls_need_answers(oai: openai.OpenAI) -> None:
    messages: list[Any] = [
        *_user("x"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "user", "content": "next"},
    ]
    with pytest.raises(openai.BadRequestError, match="call_a"):
        oai.chat.completions.create(model="m", messages=messages)


def test_limits_cut_the_answer(oai: openai.OpenAI) -> None:
    short = oai.chat.completions.create(
        model="m", messages=_user("one two three four"), max_completion_tokens=2
    )
    assert short.choices[0].message.content == "Echo: one"
    assert short.choices[0].finish_reason == "length"
    stopped = oai.chat.completions.create(
        model="m", messages=_user("one two STOP three"), stop=["STOP"]
    )
    assert stopped.choices[0].message.content == "Echo: one two "
    assert stopped.choices[0].finish_reason == "stop"


def test_usage_false_omits_usage_and_forced_usage_is_used(
    oai: openai.OpenAI, directive: Directive
) -> None:
    none = oai.chat.completions.create(model="m", messages=_user(directive(usage=False)))
    assert none.usage is None
    forced = oai.chat.completions.create(
        model="m", messages=_user(directive(usage={"input": 11, "output": 22}))
    )
    assert forced.usage is not None
    assert (forced.usage.prompt_tokens, forced.usage.completion_tokens) == (11, 22)


def test_truncated_stream_raises_connection_error_without_finish(
    oai: openai.OpenAI, directive: Directive
) -> None:
    chunks: list[Any] = []
    stream = oai.chat.completions.create(
        model="m", messages=_user(directive("a b c d e f", truncate_after=2)), stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        chunks.extend(stream)  # extend keeps what arrived before the error
    contents = [c.choices[0].delta.content for c in chunks]
    assert contents == ["", "Echo: ", "a "]  # the role chunk, then exactly two content chunks
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None]


def test_truncated_body_raises_connection_error(oai: openai.OpenAI, directive: Directive) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=_user(directive(truncate_after=0)))


def test_malformed_bodies_fail_to_parse(oai: openai.OpenAI, directive: Directive) -> None:
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="m", messages=_user(directive(malformed=True)))
    with pytest.raises(json.JSONDecodeError):
        list(
            oai.chat.completions.create(
                model="m", messages=_user(directive(malformed=True)), stream=True
            )
        )


def test_in_band_stream_error_raises_api_error(oai: openai.OpenAI, directive: Directive) -> None:
    chunks: list[Any] = []
    stream = oai.chat.completions.create(
        model="m",
        stream=True,
        messages=_user(directive("x y", stream_error="server_error", error_message="crashed")),
    )
    with pytest.raises(openai.APIError, match="crashed") as caught:
        chunks.extend(stream)
    # content first, then the error instead of the finish chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: x y"
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"


def test_latency_and_chunk_delay(oai: openai.OpenAI, directive: Directive) -> None:
    started = time.monotonic()
    oai.chat.completions.create(model="m", messages=_user(directive(latency_ms=300)))
    assert time.monotonic() - started >= 0.3

    started = time.monotonic()
    stream = oai.chat.completions.create(
        model="m",
        messages=_user(directive(chunks=["a", "b", "c"], chunk_delay_ms=200)),
        stream=True,
    )
    arrivals = [time.monotonic() - started for _ in stream]
    assert arrivals[1] < 0.15  # the first content chunk is not delayed
    assert arrivals[-1] >= 0.6  # two gaps between three chunks, one before the end


def test_hang_times_out_the_client_and_is_released(
    emulator: EmulatorServer, oai: openai.OpenAI, directive: Directive
) -> None:
    impatient = oai.with_options(timeout=0.3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="m", messages=_user(directive(hang=True)))
    assert time.monotonic() - started < 2

    state = emulator_state(emulator.app)
    deadline = time.monotonic() + 2
    while state.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.in_flight == 0  # the hung answer noticed its client leave


def test_models_list(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "emulator-demo" in ids
