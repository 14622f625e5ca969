"""What the emulated model says, decided by a directive hidden in the prompt.

The gateway forwards only the conversation to a provider, so a test that drives
the gateway cannot reach the emulator by any side channel: it writes
``[[emulate {...json...}]]`` into the last user message instead. This module
finds that directive, removes it from the text the model "sees", and turns the
conversation into a provider-neutral :class:`Script` (text, stream fragments,
tool calls, finish reason, token counts) that each wire format then renders.

A directive may be scoped to the model asked for: its ``models`` key maps an
upstream model id (the request's ``model`` field) to directive keys that are
merged over the top-level ones for a request to that model only, so one prompt
sent down a fallback chain can fail on one model and answer on the next
(:func:`scoped_keys`).

Everything here is deterministic (token counts are whitespace-separated words)
so tests can assert exact numbers, and nothing here knows about HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DIRECTIVE_OPENER = "[[emulate"
_DIRECTIVE_START = re.compile(r"\[\[emulate\s*")
_DIRECTIVE_END = re.compile(r"\s*\]\]")
_WORD = re.compile(r"\S+\s*")
_JSON = json.JSONDecoder()  # stdlib: orjson has no raw_decode, needed to find where the JSON ends
# A value a test wants the model to say but the gateway must not see in the request:
# {{conceal:...}} holds it base64-encoded CONCEAL_LAYERS times, one layer more than the
# gateway's DLP decodes (dlp.decoding.MAX_DEPTH), so only the emulator reads it.
CONCEAL_LAYERS = 3
_CONCEALED = re.compile(r"\{\{conceal:([A-Za-z0-9+/=]+)\}\}")

#: Roles whose message can carry a directive: the caller's side of the conversation.
PROMPTING_ROLES = frozenset({"user", "tool"})

#: Finish reasons as written by tests (any provider's spelling) -> the neutral name.
_FINISH_ALIASES = {
    "stop": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "stop_sequence": "stop_sequence",
}


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    """One tool call the emulated model makes; ``id`` is generated per provider when absent."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Directive:
    """The parsed ``[[emulate ...]]`` keys; invalid or missing keys keep their defaults."""

    #: The assistant text (default: an echo of the prompt, or "Tool said: ...").
    reply: str | None = None
    #: Exact stream deltas, in order (default: the reply split into words).
    chunks: tuple[str, ...] | None = None
    #: Answer with these tool calls; text accompanies them only if ``reply`` is given.
    tool_calls: tuple[ToolCallSpec, ...] = ()
    #: Answer with this HTTP error (4xx/5xx) in the provider's own error shape...
    status: int | None = None
    #: ...overriding the error's type, message, or the whole body (sent verbatim).
    error_type: str | None = None
    error_message: str | None = None
    error_body: str | None = None
    #: Seconds for a ``retry-after`` header on the error.
    retry_after: float | None = None
    #: Wait before the response headers (overrides the app's default latency).
    latency_ms: float | None = None
    #: Wait between stream content chunks (and before the terminal events).
    chunk_delay_ms: float = 0.0
    #: Never answer (an hour, cut short by the client leaving or the server stopping).
    hang: bool = False
    #: Stream: N content chunks, then drop the connection. Non-stream: half a body, then drop.
    truncate_after: int | None = None
    #: Send a body (or one stream line) that is not JSON.
    malformed: bool = False
    #: Stream: end with the provider's in-band error of this type instead of normally.
    stream_error: str | None = None
    #: ``usage: false``: omit usage (OpenAI) or report zeros (Anthropic, Ollama).
    report_usage: bool = True
    #: ``usage: {"input": n, "output": m}``: force the token counts.
    usage_input: int | None = None
    usage_output: int | None = None
    #: Override the finish reason (any provider's spelling, mapped to each format).
    finish: str | None = None

    @property
    def error_status(self) -> int | None:
        """The HTTP error to answer with, if the directive asks for one (4xx/5xx only)."""
        if self.status is not None and 400 <= self.status <= 599:
            return self.status
        return None

    def latency_s(self, default_ms: float) -> float:
        """Seconds to wait before the response headers: the directive wins over the default."""
        ms = self.latency_ms if self.latency_ms is not None else default_ms
        return max(ms, 0.0) / 1000.0


@dataclass(frozen=True, slots=True)
class Turn:
    """A provider-neutral view of one message: only what the emulator reads.

    ``texts`` are the message's own text parts; ``tool_results`` the text of any
    tool results it carries (an OpenAI/Ollama ``tool`` message, or Anthropic
    ``tool_result`` blocks in a user message).
    """

    role: str
    texts: tuple[str, ...] = ()
    tool_results: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """The request's own output limits, which a real model honours too."""

    max_words: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    """The answer to render: identical across providers except for spelling.

    ``finish`` is neutral (stop, length, tool_calls, content_filter,
    stop_sequence) or, when a test forced an unknown value, that value verbatim.
    """

    directive: Directive
    text: str
    chunks: tuple[str, ...]
    tool_calls: tuple[ToolCallSpec, ...]
    finish: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def count_words(text: str) -> int:
    """The emulator's token count: whitespace-separated words, so tests can predict it."""
    return len(text.split())


def split_words(text: str) -> list[str]:
    """Cut text into word-sized stream fragments (each word with its trailing space).

    Leading whitespace joins the first fragment, so ``"".join`` gives the text back.
    """
    parts = _WORD.findall(text)
    if not parts:
        return [text] if text else []
    lead = text[: len(text) - len(text.lstrip())]
    parts[0] = lead + parts[0]
    return parts


def split_fixed(text: str, size: int = 8) -> list[str]:
    """Cut text (tool-call arguments JSON) into fixed-size stream fragments.

    Real models stream arguments a few characters at a time; several fragments
    per call make sure a client really reassembles them.
    """
    return [text[i : i + size] for i in range(0, len(text), size)]


def find_directive(text: str) -> tuple[dict[str, Any], str] | None:
    """Locate the first well-formed directive; return its JSON object and the text without it.

    A directive whose JSON does not parse to an object is no directive at all:
    the text is then left untouched (the brief: "malformed directive JSON ->
    treat as no directive").
    """
    for start in _DIRECTIVE_START.finditer(text):
        try:
            value, end = _JSON.raw_decode(text, start.end())
        except ValueError:
            continue
        closer = _DIRECTIVE_END.match(text, end)
        if closer is None or not isinstance(value, dict):
            continue
        return _revealed(value), text[: start.start()] + text[closer.end() :]
    return None


def conceal(value: str) -> str:
    """``value`` as a directive can carry it past the gateway's DLP (see ``CONCEAL_LAYERS``)."""
    data = value.encode("utf-8")
    for _ in range(CONCEAL_LAYERS):
        data = base64.b64encode(data)
    return "{{conceal:" + data.decode("ascii") + "}}"


def _revealed(value: Any) -> Any:
    """``value`` with every ``{{conceal:...}}`` in its strings decoded."""
    if isinstance(value, str):
        return _CONCEALED.sub(_reveal, value)
    if isinstance(value, list):
        return [_revealed(item) for item in value]
    if isinstance(value, dict):
        return {key: _revealed(item) for key, item in value.items()}
    return value


def _reveal(found: re.Match[str]) -> str:
    data = found.group(1).encode("ascii")
    try:
        for _ in range(CONCEAL_LAYERS):
            data = base64.b64decode(data, validate=True)
        return data.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return found.group(0)


def strip_directives(text: str) -> str:
    """Remove every well-formed directive, so none is echoed or counted as a token."""
    while (found := find_directive(text)) is not None:
        text = found[1]
    return text


def scoped_keys(raw: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """The directive's keys for a request to ``model``: its ``models[model]`` entry over the rest.

    ``[[emulate {"reply": "hi", "models": {"gpt-4o-mini": {"status": 500}}}]]``
    answers 500 to a request for ``gpt-4o-mini`` and "hi" to any other model.
    The entry's keys replace the top-level keys of the same name (a shallow
    merge); a ``models`` value or entry that is not an object is ignored, and
    the ``models`` key itself is never part of the result.
    """
    keys = {k: v for k, v in raw.items() if k != "models"}
    scoped = raw.get("models")
    if model is not None and isinstance(scoped, Mapping):
        entry = scoped.get(model)
        if isinstance(entry, Mapping):
            keys.update((k, v) for k, v in entry.items() if k != "models")
    return keys


def _int(value: object, minimum: int | None = None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = int(value)
    if minimum is not None and number < minimum:
        return None
    return number


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _tool_calls(value: object) -> tuple[ToolCallSpec, ...]:
    if not isinstance(value, list):
        return ()
    calls: list[ToolCallSpec] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        arguments = item.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = {}
        if not isinstance(arguments, dict):
            arguments = {}
        calls.append(ToolCallSpec(item["name"], arguments, _text(item.get("id"))))
    return tuple(calls)


def parse_directive(raw: Mapping[str, Any]) -> Directive:
    """Build a :class:`Directive`, ignoring keys whose values have the wrong type.

    Lenient on purpose: a typo in one key of a test's directive should not turn
    the whole answer into an error the test did not ask for.
    """
    chunks = raw.get("chunks")
    usage = raw.get("usage", True)
    usage_map = usage if isinstance(usage, dict) else {}
    retry_after = _number(raw.get("retry_after"))
    return Directive(
        reply=_text(raw.get("reply")),
        chunks=(
            tuple(c for c in chunks if isinstance(c, str)) if isinstance(chunks, list) else None
        ),
        tool_calls=_tool_calls(raw.get("tool_calls")),
        status=_int(raw.get("status")),
        error_type=_text(raw.get("error_type")),
        error_message=_text(raw.get("error_message")),
        error_body=_text(raw.get("error_body")),
        retry_after=retry_after if retry_after is not None and retry_after >= 0 else None,
        latency_ms=_number(raw.get("latency_ms")),
        chunk_delay_ms=max(_number(raw.get("chunk_delay_ms")) or 0.0, 0.0),
        hang=raw.get("hang") is True,
        truncate_after=_int(raw.get("truncate_after"), minimum=0),
        malformed=raw.get("malformed") is True,
        stream_error=_text(raw.get("stream_error")),
        report_usage=usage is not False,
        usage_input=_int(usage_map.get("input"), minimum=0),
        usage_output=_int(usage_map.get("output"), minimum=0),
        finish=_text(raw.get("finish")),
    )


def read_directive(turns: Sequence[Turn], model: str | None = None) -> tuple[Directive, str, bool]:
    """Find the directive in the last user/tool turn, as it applies to ``model``.

    Returns the directive, that turn's text with the directive removed, and
    whether the turn is a tool result (which changes the default reply). Only
    the latest prompting turn counts: a directive from an earlier user turn
    (say one that asked for a tool call) must not fire again once the tool
    result comes back. The one exception is a directive's ``then`` key: the
    directive keys for the answer to the next prompting turn, when that turn
    carries no directive of its own (a gateway's follow-up message, such as a
    corrective instruction, is answered as the test scripted). ``model`` is
    the upstream model the request names: its entry in the directive's
    ``models`` key, if any, is merged over the rest (:func:`scoped_keys`).
    """
    prompting = [t for t in turns if t.role in PROMPTING_ROLES]
    if not prompting:
        return Directive(), "", False
    turn = prompting[-1]
    keys = _directive_keys(turn)
    if keys is None and len(prompting) > 1:
        earlier = _directive_keys(prompting[-2])
        then = earlier.get("then") if earlier is not None else None
        keys = then if isinstance(then, dict) else None
    directive = parse_directive(scoped_keys(keys, model)) if keys is not None else Directive()
    pieces = list(turn.tool_results or turn.texts)
    separator = "\n" if turn.tool_results else ""
    cleaned = separator.join(strip_directives(p) for p in pieces).strip()
    return directive, cleaned, bool(turn.tool_results)


def _directive_keys(turn: Turn) -> dict[str, Any] | None:
    for text in [*turn.texts, *turn.tool_results]:
        found = find_directive(text)
        if found is not None:
            return found[0]
    return None


def _cut_chunks(chunks: Sequence[str], length: int) -> tuple[str, ...]:
    """Keep the fragments that make up the first ``length`` characters of their join."""
    kept: list[str] = []
    remaining = length
    for chunk in chunks:
        if remaining <= 0:
            break
        kept.append(chunk[:remaining])
        remaining -= len(chunk)
    return tuple(kept)


def _apply_limits(text: str, limits: Limits) -> tuple[str, str | None, str | None]:
    """Cut text at a stop sequence or the word budget; return text, finish, matched stop."""
    finish: str | None = None
    matched: str | None = None
    hits = [(text.find(s), s) for s in limits.stop if s and s in text]
    if hits:
        position, matched = min(hits)
        text, finish = text[:position], "stop_sequence"
    if limits.max_words is not None and count_words(text) > limits.max_words:
        text = "".join(split_words(text)[: limits.max_words]).rstrip()
        finish, matched = "length", None
    return text, finish, matched


def normalise_finish(value: str) -> str:
    """Map any provider's finish-reason spelling to the neutral name (unknown kept verbatim)."""
    return _FINISH_ALIASES.get(value, value)


def build_script(
    turns: Sequence[Turn],
    *,
    reply_prefix: str,
    stream: bool,
    limits: Limits | None = None,
    model: str | None = None,
) -> Script:
    """Decide the whole answer for one request (to the upstream ``model``, if given).

    Streaming uses ``chunks`` when the directive gives them (their join is then
    the text); otherwise the reply is split into words. Limits (stop sequences,
    max tokens as words) apply to text answers only, as they would on a model
    that stopped generating; a tool-call answer is returned whole.
    """
    directive, prompt, from_tool = read_directive(turns, model)
    if directive.reply is not None:
        text = directive.reply
    elif directive.chunks is not None:
        text = "".join(directive.chunks)
    elif directive.tool_calls:
        text = ""  # a tool-call answer carries text only when the test asks for it
    elif from_tool:
        text = "Tool said: " + prompt
    else:
        text = reply_prefix + prompt
    chunk_source: Sequence[str] = (
        directive.chunks if stream and directive.chunks is not None else split_words(text)
    )
    if stream and directive.chunks is not None:
        text = "".join(directive.chunks)

    finish = "tool_calls" if directive.tool_calls else "stop"
    stop_sequence: str | None = None
    if not directive.tool_calls:
        cut, limited, stop_sequence = _apply_limits(text, limits or Limits())
        if limited is not None:
            chunk_source = _cut_chunks(chunk_source, len(cut))
            text, finish = cut, limited
    if directive.finish is not None:
        finish = normalise_finish(directive.finish)

    input_tokens = sum(
        count_words(strip_directives("".join(t.texts)))
        + sum(count_words(strip_directives(r)) for r in t.tool_results)
        for t in turns
    )
    output_tokens = count_words(text) + len(directive.tool_calls)
    if not directive.report_usage:
        input_tokens = output_tokens = 0
    if directive.usage_input is not None:
        input_tokens = directive.usage_input
    if directive.usage_output is not None:
        output_tokens = directive.usage_output
    return Script(
        directive=directive,
        text=text,
        chunks=tuple(chunk_source),
        tool_calls=directive.tool_calls,
        finish=finish,
        stop_sequence=stop_sequence,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
