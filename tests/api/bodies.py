"""Request bodies that use every field each front door reads.

Shared by the type-confusion test (every field given every type) and the DLP
field-coverage test (a secret planted in every string field, read back from
what the provider received). ``test_bodies`` checks that each body really
exercises every key its door's parser reads.
"""

from __future__ import annotations

from typing import Any

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": ["a"]}}}

OPENAI_BODY: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "really"}]},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "more"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "plain"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": SCHEMA}}
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "max_tokens": 10,
    "max_completion_tokens": 10,
    "temperature": 0.5,
    "top_p": 0.5,
    "stop": ["x"],
    "seed": 1,
    "n": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "n", "description": "d", "strict": True, "schema": SCHEMA},
    },
    "user": "u",
}

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.org/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1, "city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "is_error": False,
                    "content": [{"type": "text", "text": "done"}],
                },
                {"type": "tool_result", "tool_use_id": "t2", "content": "also done"},
            ],
        },
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "plain"},
    ],
    "tools": [{"type": "custom", "name": "f", "description": "d", "input_schema": SCHEMA}],
    "tool_choice": {"type": "tool", "name": "f"},
    "temperature": 0.5,
    "top_p": 0.5,
    "top_k": 5,
    "stop_sequences": ["x"],
    "stream": True,
    "metadata": {"user_id": "u"},
}

NATIVE_BODY: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
    "max_tokens": 10,
    "temperature": 0.5,
    "stream": True,
}
