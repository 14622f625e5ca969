"""The OpenAI-compatible front door: ``POST /v1/chat/completions``.

Parameters the gateway cannot honour for every provider (``logprobs``,
``logit_bias``, ...) are accepted and ignored, as LiteLLM's ``drop_params``
does, so that unmodified SDK clients keep working; ``n`` other than 1 is
refused because silently answering once would be wrong.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from llm_gateway.api import fields as f
from llm_gateway.api.fields import JSON
from llm_gateway.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    EventStream,
    ImagePart,
    Message,
    StreamEnd,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
    Usage,
)
from llm_gateway.errors import ErrorKind, GatewayError, InvalidRequest
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.wire.openai import FINISH_TO_OPENAI, tool_calls_to_openai
from llm_gateway.wire.sse import sse

ROLES = ("system", "developer", "user", "assistant", "tool")

# --- wire -> canonical ---------------------------------------------------------


def parse_request(body: bytes) -> ChatRequest:
    data = f.decode_body(body)
    model = f.req_str(data, "model")
    system: list[str] = []
    messages = [
        m
        for i, raw in enumerate(f.non_empty_messages(data))
        if (m := _message(raw, i, system)) is not None
    ]
    n = f.opt_int(data, "n", minimum=1)
    if n not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported", code="unsupported_parameter", param="n")
    stream = bool(f.opt_bool(data, "stream"))
    stream_options = f.opt_obj(data, "stream_options") or {}
    json_output, json_schema = _response_format(f.opt_obj(data, "response_format"))
    max_tokens = f.opt_int(data, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = f.opt_int(data, "max_tokens", minimum=1)
    return ChatRequest(
        model=model,
        messages=messages,
        system="\n\n".join(system) if system else None,
        tools=[_tool(t, i) for i, t in enumerate(f.opt_list(data, "tools"))],
        tool_choice=_tool_choice(data.get("tool_choice")),
        max_tokens=max_tokens,
        temperature=f.opt_number(data, "temperature", low=0, high=2),
        top_p=f.opt_number(data, "top_p", low=0, high=1),
        stop=f.stop_list(data, "stop"),
        seed=f.opt_int(data, "seed"),
        stream=stream,
        include_usage=bool(
            stream and f.opt_bool(stream_options, "include_usage", "stream_options.")
        ),
        json_output=json_output,
        json_schema=json_schema,
        user=f.opt_str(data, "user"),
    )


def _message(raw: Any, i: int, system: list[str]) -> Message | None:
    path = f"messages[{i}]"
    m = f.as_obj(raw, path)
    role = m.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"{path}.role: expected one of {', '.join(ROLES)}",
            code="invalid_role",
            param=f"{path}.role",
        )
    if role in ("system", "developer"):
        system.append(
            "".join(p.text for p in _content(m, path, images=False) if isinstance(p, TextPart))
        )
        return None
    if role == "tool":
        return Message(
            role="tool",
            content=_content(m, path, images=False),
            tool_call_id=f.req_str(m, "tool_call_id", f"{path}."),
        )
    if role == "assistant":
        calls = [
            _tool_call(c, f"{path}.tool_calls[{j}]")
            for j, c in enumerate(f.opt_list(m, "tool_calls", f"{path}."))
        ]
        content = _content(m, path, images=False, optional=True)
        return Message(role="assistant", content=content, tool_calls=calls)
    return Message(
        role="user", content=_content(m, path, images=True), name=f.opt_str(m, "name", f"{path}.")
    )


def _content(m: JSON, path: str, *, images: bool, optional: bool = False) -> list[ContentPart]:
    value = m.get("content")
    where = f"{path}.content"
    if value is None:
        if optional:
            return []
        raise f.missing(where)
    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list):
        raise f.invalid(where, "a string or an array of content parts", value)
    parts: list[ContentPart] = []
    for j, raw in enumerate(value):
        part = f.as_obj(raw, f"{where}[{j}]")
        kind = part.get("type")
        if kind == "text":
            parts.append(TextPart(f.opt_str(part, "text", f"{where}[{j}].") or ""))
        elif kind == "image_url" and images:
            image = f.as_obj(part.get("image_url"), f"{where}[{j}].image_url")
            parts.append(_image(f.req_str(image, "url", f"{where}[{j}].image_url.")))
        elif kind == "refusal":
            continue
        else:
            raise InvalidRequest(
                f"{where}[{j}].type: unsupported content part type {kind!r} here",
                code="unsupported_content", param=f"{where}[{j}].type",
            )  # fmt: skip
    return parts


def _image(url: str) -> ImagePart:
    if url.startswith("data:") and ";base64," in url:
        header, data = url[5:].split(";base64,", 1)
        return ImagePart(data=data, media_type=header or None)
    return ImagePart(url=url)


def _tool_call(raw: Any, path: str) -> ToolCall:
    call = f.as_obj(raw, path)
    function = f.as_obj(call.get("function"), f"{path}.function")
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        raise f.invalid(f"{path}.function.arguments", "a JSON string", arguments)
    return ToolCall(
        f.req_str(call, "id", f"{path}."),
        f.req_str(function, "name", f"{path}.function."),
        arguments,
    )


def _tool(raw: Any, i: int) -> ToolSpec:
    path = f"tools[{i}]"
    tool = f.as_obj(raw, path)
    if tool.get("type", "function") != "function":
        raise f.invalid(f"{path}.type", "'function'", code="unsupported_tool")
    function = f.as_obj(tool.get("function"), f"{path}.function")
    return ToolSpec(
        name=f.req_str(function, "name", f"{path}.function."),
        description=f.opt_str(function, "description", f"{path}.function."),
        parameters=f.opt_obj(function, "parameters", f"{path}.function.") or {},
    )


def _tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ToolChoice(mode=value)
    if isinstance(value, dict):
        function = f.as_obj(value.get("function"), "tool_choice.function")
        return ToolChoice(
            mode="required", name=f.req_str(function, "name", "tool_choice.function.")
        )
    raise f.invalid("tool_choice", "'auto', 'none', 'required' or a function choice", value)


def _response_format(value: JSON | None) -> tuple[bool, JSON | None]:
    """``response_format`` as (JSON output wanted, the JSON schema if one was given)."""
    if value is None:
        return False, None
    kind = value.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise f.invalid("response_format.type", "'text', 'json_object' or 'json_schema'")
    if kind != "json_schema":
        return kind == "json_object", None
    schema = f.as_obj(value.get("json_schema"), "response_format.json_schema")
    f.req_str(schema, "name", "response_format.json_schema.")
    return True, schema


# --- canonical -> wire ---------------------------------------------------------


def _usage(usage: Usage | None) -> JSON | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def encode_response(ctx: RequestContext, response: ChatResponse) -> bytes:
    message: JSON = {"role": "assistant", "content": response.text or None, "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = tool_calls_to_openai(response.tool_calls)
    body: JSON = {
        "id": f"chatcmpl-{ctx.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_TO_OPENAI[response.finish_reason],
            }
        ],
        "usage": _usage(response.usage),
    }
    if ctx.call.grounding is not None:
        body["grounding"] = ctx.call.grounding.to_json()
    return orjson.dumps(body)


async def encode_stream(ctx: RequestContext, stream: EventStream) -> AsyncGenerator[bytes, None]:
    """SSE ``chat.completion.chunk`` events ending with ``data: [DONE]``.

    Every chunk shares its envelope, so the envelope is serialised once and
    only each delta goes through the JSON encoder.
    """
    include_usage = ctx.chat is not None and ctx.chat.include_usage
    head = orjson.dumps(
        {"id": f"chatcmpl-{ctx.request_id}", "object": "chat.completion.chunk",
         "created": int(time.time()), "model": stream.start.model}
    )[:-1] + b',"choices":[{"index":0,"delta":'  # fmt: skip
    tail = b',"logprobs":null,"finish_reason":null}]' + (
        b',"usage":null}' if include_usage else b"}"
    )
    yield sse(head + b'{"role":"assistant","content":""}' + tail)
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                yield sse(head + orjson.dumps({"content": event.text}) + tail)
            elif isinstance(event, ToolCallDelta):
                call: JSON = {"index": event.index}
                function: JSON = {"arguments": event.arguments}
                if event.id is not None:
                    call["id"], call["type"] = event.id, "function"
                if event.name is not None:
                    function["name"] = event.name
                call["function"] = function
                yield sse(head + orjson.dumps({"tool_calls": [call]}) + tail)
            elif isinstance(event, StreamEnd):
                finish = orjson.dumps(FINISH_TO_OPENAI[event.finish_reason])
                end = b',"logprobs":null,"finish_reason":' + finish + b"}]"
                yield sse(head + b"{}" + end + (b',"usage":null}' if include_usage else b"}"))
                if include_usage:
                    envelope = head[: head.index(b',"choices"')]
                    usage = orjson.dumps(_usage(event.usage))
                    yield sse(envelope + b',"choices":[],"usage":' + usage + b"}")
                if ctx.call.grounding is not None:  # the verdict on the whole text, last
                    envelope = head[: head.index(b',"choices"')]
                    verdict = orjson.dumps(ctx.call.grounding.to_json())
                    yield sse(envelope + b',"choices":[],"grounding":' + verdict + b"}")
                yield b"data: [DONE]\n\n"
    except GatewayError as exc:
        yield stream_error(exc, ctx.request_id)


def stream_error(error: GatewayError, request_id: str) -> bytes:
    """The event that ends a stream in error: the error object, as OpenAI sends one."""
    return sse(orjson.dumps(error_body(error, request_id)))


# --- errors --------------------------------------------------------------------

_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.UNAVAILABLE: "service_unavailable_error",
    ErrorKind.INTERNAL: "server_error",
}


def error_body(error: GatewayError, request_id: str) -> JSON:
    return {
        "error": {
            "message": error.message,
            "type": _TYPES[error.kind],
            "param": error.param,
            "code": error.code,
            "request_id": request_id,
            **error.details,
        }
    }
