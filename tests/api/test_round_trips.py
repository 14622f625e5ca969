"""Client request -> canonical -> provider request, across every pairing that matters.

A gateway in front of one provider must pass the conversation through intact;
across providers it must translate tools and tool results faithfully.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from llm_gateway.api import anthropic as anthropic_door
from llm_gateway.api import openai as openai_door
from llm_gateway.config import Deployment, Provider
from llm_gateway.errors import InvalidRequest
from llm_gateway.providers.anthropic import AnthropicAdapter
from llm_gateway.providers.ollama import OllamaAdapter
from llm_gateway.providers.openai import OpenAIAdapter

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def deployment(provider: Provider, **fields: Any) -> Deployment:
    values: dict[str, Any] = {
        "name": "dep",
        "provider": provider,
        "base_url": "http://upstream.test/v1",
        "upstream_model": "upstream-model",
        "api_key": "secret-key",
        "timeout_s": 30.0,
        "max_concurrent": 8,
        "weight": 1,
        "default_max_tokens": 4096,
        "price": None,
    }
    values.update(fields)
    return Deployment(**values)


def from_openai(data: dict[str, Any]) -> Any:
    return openai_door.parse_request(orjson.dumps(data))


def from_anthropic(data: dict[str, Any]) -> Any:
    return anthropic_door.parse_request(orjson.dumps(data))


def to_openai(chat: Any, provider: Provider = Provider.OPENAI) -> dict[str, Any]:
    request = OpenAIAdapter().build_request(deployment(provider), chat)
    body: dict[str, Any] = json.loads(request.body)
    return body


def to_anthropic(chat: Any) -> dict[str, Any]:
    request = AnthropicAdapter().build_request(deployment(Provider.ANTHROPIC), chat)
    body: dict[str, Any] = json.loads(request.body)
    return body


def to_ollama(chat: Any) -> dict[str, Any]:
    request = OllamaAdapter().build_request(deployment(Provider.OLLAMA), chat)
    body: dict[str, Any] = json.loads(request.body)
    return body


# --- an OpenAI conversation with tools ------------------------------------------------------

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "weather", "description": "Current weather", "parameters": SCHEMA},
    },
    {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}},
]
OPENAI_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a weather bot."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather here?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/sky.jpg"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
        "name": "alice",
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
    {"role": "user", "content": "Thanks! And tomorrow?"},
]


def openai_request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "messages": OPENAI_CONVERSATION,
        "tools": OPENAI_TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "max_completion_tokens": 300,
        "temperature": 0.4,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 11,
        "user": "user-42",
        **fields,
    }


def test_openai_to_openai_preserves_the_request() -> None:
    payload = to_openai(from_openai(openai_request(response_format={"type": "json_object"})))
    assert payload == {
        "model": "upstream-model",
        "messages": OPENAI_CONVERSATION,
        "tools": OPENAI_TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "max_completion_tokens": 300,
        "temperature": 0.4,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 11,
        "user": "user-42",
        "response_format": {"type": "json_object"},
    }


def test_openai_to_openai_system_and_developer_become_one_system_message() -> None:
    messages = [
        {"role": "developer", "content": "Rule one."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Rule two."},
    ]
    payload = to_openai(from_openai({"model": "m", "messages": messages}))
    assert payload["messages"] == [
        {"role": "system", "content": "Rule one.\n\nRule two."},
        {"role": "user", "content": "hi"},
    ]


def test_openai_to_openai_keeps_tool_arguments_verbatim() -> None:
    arguments = '{ "city" :"Paris" ,\n "unit": "c"}'
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "w", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]
    payload = to_openai(from_openai({"model": "m", "messages": messages}))
    assert payload["messages"] == messages


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_openai_to_openai_tool_choice_modes(choice: str) -> None:
    payload = to_openai(from_openai(openai_request(tool_choice=choice)))
    assert payload["tool_choice"] == choice


def test_openai_to_openai_streaming_always_asks_for_usage() -> None:
    payload = to_openai(from_openai(openai_request(stream=True)))
    assert payload["stream"] is True
    assert payload["stream_options"] == {"include_usage": True}


def test_openai_to_compatible_server_uses_max_tokens() -> None:
    payload = to_openai(from_openai(openai_request()), Provider.OPENAI_COMPATIBLE)
    assert payload["max_tokens"] == 300
    assert "max_completion_tokens" not in payload


def test_openai_to_anthropic() -> None:
    payload = to_anthropic(from_openai(openai_request(max_completion_tokens=None)))
    assert payload == {
        "model": "upstream-model",
        "max_tokens": 4096,  # the deployment's default: Anthropic requires it
        "system": "You are a weather bot.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "source": {"type": "url",
                                                 "url": "https://example.com/sky.jpg"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "weather",
                     "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "time", "input": {}},
                ],
            },
            {
                "role": "user",  # both results and the next question in one user turn
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "12:00"},
                    {"type": "text", "text": "Thanks! And tomorrow?"},
                ],
            },
        ],
        "tools": [
            {"name": "weather", "description": "Current weather", "input_schema": SCHEMA},
            {"name": "time", "input_schema": {"type": "object"}},
        ],
        "tool_choice": {"type": "tool", "name": "weather"},
        "temperature": 0.4,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"})],
)
def test_openai_to_anthropic_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    assert to_anthropic(from_openai(openai_request(tool_choice=choice)))["tool_choice"] == expected


def test_openai_to_anthropic_with_unparseable_tool_arguments_is_refused() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{oops"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]
    chat = from_openai({"model": "m", "messages": messages})
    with pytest.raises(InvalidRequest) as info:
        to_anthropic(chat)
    assert info.value.code == "invalid_tool_call"


# --- an Anthropic conversation with tools ---------------------------------------------------

ANTHROPIC_TOOLS = [
    {"name": "weather", "description": "Current weather", "input_schema": SCHEMA},
    {"name": "time", "input_schema": {"type": "object", "properties": {}}},
]
ANTHROPIC_CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather here?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
            },
            {"type": "image", "source": {"type": "url", "url": "https://example.com/sky.jpg"}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "clock broken",
             "is_error": True},
            {"type": "text", "text": "And tomorrow?"},
        ],
    },
]  # fmt: skip


def anthropic_request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 300,
        "system": "You are a weather bot.",
        "messages": ANTHROPIC_CONVERSATION,
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "any"},
        "temperature": 0.4,
        "top_p": 0.9,
        "top_k": 20,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        **fields,
    }


def test_anthropic_to_anthropic_preserves_the_request() -> None:
    payload = to_anthropic(from_anthropic(anthropic_request(stream=True)))
    assert payload == {
        "model": "upstream-model",
        "max_tokens": 300,
        "system": "You are a weather bot.",
        "messages": ANTHROPIC_CONVERSATION,
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "any"},
        "temperature": 0.4,
        "top_p": 0.9,
        "top_k": 20,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


@pytest.mark.parametrize(
    "choice", [{"type": "auto"}, {"type": "none"}, {"type": "tool", "name": "time"}]
)
def test_anthropic_to_anthropic_tool_choice(choice: dict[str, Any]) -> None:
    assert to_anthropic(from_anthropic(anthropic_request(tool_choice=choice)))["tool_choice"] == (
        choice
    )


def test_anthropic_to_anthropic_merges_consecutive_turns_and_drops_thinking() -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "three"},
            ],
        },
        {"role": "assistant", "content": "four"},
    ]
    payload = to_anthropic(from_anthropic({"model": "m", "max_tokens": 5, "messages": messages}))
    assert payload["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"},
                                     {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"},
                                          {"type": "text", "text": "four"}]},
    ]  # fmt: skip


def test_anthropic_to_anthropic_tool_result_only_turn() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                           "input": {"a": [1, {"b": None}]}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": "done"}]},
    ]  # fmt: skip
    payload = to_anthropic(from_anthropic({"model": "m", "max_tokens": 5, "messages": messages}))
    assert payload["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assert payload["messages"][1:] == messages[1:]


def test_anthropic_to_anthropic_keeps_tool_result_content_blocks() -> None:
    """A tool result made of several blocks, one an image, must reach Anthropic intact."""
    result_blocks = [
        {"type": "text", "text": "Screenshot taken:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVB"}},
    ]
    messages = [
        {"role": "user", "content": "take a screenshot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "shot",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": result_blocks}]},
    ]  # fmt: skip
    payload = to_anthropic(from_anthropic({"model": "m", "max_tokens": 5, "messages": messages}))
    [result] = payload["messages"][2]["content"]
    assert result["type"] == "tool_result"
    assert result["tool_use_id"] == "t"
    content = result["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    assert content == result_blocks


def test_anthropic_to_openai() -> None:
    payload = to_openai(from_anthropic(anthropic_request()))
    messages = payload.pop("messages")
    assert payload == {
        "model": "upstream-model",
        "max_completion_tokens": 300,
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Current weather",
                                              "parameters": SCHEMA}},
            {"type": "function", "function": {"name": "time",
                                              "parameters": {"type": "object", "properties": {}}}},
        ],
        "tool_choice": "required",
        "temperature": 0.4,
        "top_p": 0.9,
        "stop": ["END"],
        "user": "user-42",
    }  # fmt: skip
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert messages[0] == {"role": "system", "content": "You are a weather bot."}
    assert messages[1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather here?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/sky.jpg"}},
        ],
    }
    assistant = messages[2]
    assert assistant["content"] == "Let me check."
    calls = assistant["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("toolu_1", "function", "weather"),
        ("toolu_2", "function", "time"),
    ]
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert json.loads(calls[1]["function"]["arguments"]) == {}
    assert messages[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, sunny"}
    assert messages[4] == {"role": "tool", "tool_call_id": "toolu_2", "content": "clock broken"}
    assert messages[5] == {"role": "user", "content": "And tomorrow?"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "time"}, {"type": "function", "function": {"name": "time"}}),
    ],
)
def test_anthropic_to_openai_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    payload = to_openai(from_anthropic(anthropic_request(tool_choice=choice)))
    assert payload["tool_choice"] == expected


# --- to Ollama -------------------------------------------------------------------------


def test_openai_to_ollama() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            ],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]  # fmt: skip
    payload = to_ollama(
        from_openai(
            {
                "model": "m",
                "messages": messages,
                "tools": OPENAI_TOOLS[:1],
                "max_tokens": 64,
                "temperature": 0.2,
                "top_p": 0.8,
                "seed": 3,
                "stop": ["END"],
                "response_format": {"type": "json_object"},
            }
        )
    )
    assert payload == {
        "model": "upstream-model",
        "stream": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?", "images": ["iVBOR"]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}],
            },
            {"role": "tool", "content": "18C", "tool_name": "weather"},
        ],
        "options": {"temperature": 0.2, "top_p": 0.8, "seed": 3, "num_predict": 64,
                    "stop": ["END"]},
        "format": "json",
        "tools": [{"type": "function", "function": {"name": "weather",
                                                    "description": "Current weather",
                                                    "parameters": SCHEMA}}],
    }  # fmt: skip


def test_anthropic_to_ollama() -> None:
    # Ollama takes inline images only; this conversation's first turn has a URL image.
    text_only = {"role": "user", "content": [{"type": "text", "text": "Weather here?"}]}
    messages = [text_only, *ANTHROPIC_CONVERSATION[1:]]
    payload = to_ollama(from_anthropic(anthropic_request(stream=True, messages=messages)))
    assert payload["stream"] is True
    assert payload["options"] == {
        "temperature": 0.4,
        "top_p": 0.9,
        "top_k": 20,
        "num_predict": 300,
        "stop": ["END"],
    }
    assert payload["messages"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather here?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "18C, sunny", "tool_name": "weather"},
        {"role": "tool", "content": "clock broken", "tool_name": "time"},
        {"role": "user", "content": "And tomorrow?"},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_stream_is_always_explicit(stream: bool) -> None:
    chat = from_openai({"model": "m", "messages": [{"role": "user", "content": "x"}],
                        "stream": stream})  # fmt: skip
    assert to_ollama(chat)["stream"] is stream
    chat = from_openai({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert to_ollama(chat)["stream"] is False


def test_ollama_refuses_image_urls() -> None:
    chat = from_openai(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "image_url",
                                              "image_url": {"url": "https://x/y.png"}}]}
            ],
        }
    )  # fmt: skip
    with pytest.raises(InvalidRequest) as info:
        to_ollama(chat)
    assert info.value.code == "unsupported_content"
