"""Model-scoped directives: ``"models": {"<upstream id>": {...}}`` over the top-level keys.

One prompt goes to every model of a fallback chain, so a test of the chain
steers each model through its own entry. Checked on the neutral script and
through each wire format (the model is read from each format's own field).
"""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest

from llm_gateway.emulators.behaviour import Turn, build_script, scoped_keys

Directive = Callable[..., str]


def test_the_entry_for_the_model_is_merged_over_the_top_level_keys() -> None:
    raw = {"reply": "top", "latency_ms": 5, "models": {"a": {"status": 500, "reply": "a!"}}}
    assert scoped_keys(raw, "a") == {"reply": "a!", "latency_ms": 5, "status": 500}
    assert scoped_keys(raw, "b") == {"reply": "top", "latency_ms": 5}
    assert scoped_keys(raw, None) == {"reply": "top", "latency_ms": 5}


def test_wrongly_shaped_models_keys_are_ignored() -> None:
    assert scoped_keys({"reply": "x", "models": ["a"]}, "a") == {"reply": "x"}
    assert scoped_keys({"reply": "x", "models": {"a": 500}}, "a") == {"reply": "x"}
    nested = {"models": {"a": {"models": {"a": {"status": 500}}, "reply": "y"}}}
    assert scoped_keys(nested, "a") == {"reply": "y"}


def test_build_script_applies_the_scope_of_the_model_asked_for() -> None:
    turn = Turn("user", ('q [[emulate {"reply": "ok", "models": {"m1": {"status": 503}}}]]',))
    failing = build_script((turn,), reply_prefix="", stream=False, model="m1")
    other = build_script((turn,), reply_prefix="", stream=False, model="m2")
    unnamed = build_script((turn,), reply_prefix="", stream=False)
    assert failing.directive.error_status == 503
    assert (other.directive.error_status, other.text) == (None, "ok")
    assert unnamed.directive.error_status is None


def _user(text: str) -> list[openai.types.chat.ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def test_openai_format_scopes_by_the_request_model(
    oai: openai.OpenAI, directive: Directive
) -> None:
    prompt = directive("hi", reply="fine", models={"gpt-4o-mini": {"status": 500}})
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o-mini", messages=_user(prompt))
    answer = oai.chat.completions.create(model="gpt-4o", messages=_user(prompt))
    assert answer.choices[0].message.content == "fine"


def test_anthropic_format_scopes_by_the_request_model(
    claude: anthropic.Anthropic, directive: Directive
) -> None:
    prompt = directive("hi", models={"claude-a": {"status": 429, "retry_after": 3}})
    with pytest.raises(anthropic.RateLimitError) as raised:
        claude.messages.create(
            model="claude-a", max_tokens=50, messages=[{"role": "user", "content": prompt}]
        )
    assert raised.value.response.headers["retry-after"] == "3"
    answer = claude.messages.create(
        model="claude-b", max_tokens=50, messages=[{"role": "user", "content": prompt}]
    )
    assert answer.content[0].type == "text"
    assert answer.content[0].text.endswith("hi")


def test_ollama_format_scopes_by_the_request_model(
    http: httpx.Client, directive: Directive
) -> None:
    prompt = directive("hi", models={"llama3.2": {"reply": "scoped"}, "qwen": {"status": 500}})

    def chat(model: str) -> httpx.Response:
        body = {"model": model, "stream": False, "messages": [{"role": "user", "content": prompt}]}
        return http.post("/api/chat", json=body)

    assert chat("llama3.2").json()["message"]["content"] == "scoped"
    assert chat("qwen").status_code == 500
    assert chat("mistral").json()["message"]["content"].endswith("hi")
