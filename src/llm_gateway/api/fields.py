"""Checked access to a decoded JSON body, shared by the front doors.

Front doors validate by hand rather than through pydantic models: they
translate straight into the canonical dataclasses in one pass, and each error
names the exact field (``messages[2].content``) in the ``param`` that OpenAI's
error format has a place for.
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.errors import InvalidRequest

JSON = dict[str, Any]


def decode_body(body: bytes) -> JSON:
    if not body:
        raise InvalidRequest(
            "the request body is empty; expected a JSON object", code="invalid_json"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                "the request body is not valid UTF-8", code="invalid_utf8"
            ) from None
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidRequest(
            f"the request body is not valid JSON ({exc.msg} at {where})", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return data


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def invalid(
    path: str, expected: str, value: Any = ..., code: str = "invalid_field"
) -> InvalidRequest:
    got = "" if value is ... else f", got {_type_name(value)}"
    return InvalidRequest(f"{path}: expected {expected}{got}", code=code, param=path)


def missing(path: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: this field is required", code="missing_field", param=path)


def req_str(data: JSON, key: str, path: str = "") -> str:
    value = data.get(key)
    where = f"{path}{key}"
    if value is None:
        raise missing(where)
    if not isinstance(value, str) or not value:
        raise invalid(where, "a non-empty string", value)
    return value


def opt_str(data: JSON, key: str, path: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"{path}{key}", "a string", value)


def opt_bool(data: JSON, key: str, path: str = "") -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise invalid(f"{path}{key}", "true or false", value)


def opt_int(data: JSON, key: str, path: str = "", *, minimum: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{path}{key}", "an integer", value)
    if minimum is not None and value < minimum:
        raise invalid(f"{path}{key}", f"an integer of at least {minimum}")
    return value


def opt_number(data: JSON, key: str, path: str = "", *, low: float, high: float) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{path}{key}", "a number", value)
    if not low <= value <= high:
        raise invalid(f"{path}{key}", f"a number from {low:g} to {high:g}")
    return float(value)


def req_list(data: JSON, key: str, path: str = "") -> list[Any]:
    value = data.get(key)
    if value is None:
        raise missing(f"{path}{key}")
    if not isinstance(value, list):
        raise invalid(f"{path}{key}", "an array", value)
    return value


def opt_list(data: JSON, key: str, path: str = "") -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{path}{key}", "an array", value)
    return value


def as_obj(value: Any, path: str) -> JSON:
    if not isinstance(value, dict):
        raise invalid(path, "an object", value)
    return value


def opt_obj(data: JSON, key: str, path: str = "") -> JSON | None:
    value = data.get(key)
    return None if value is None else as_obj(value, f"{path}{key}")


def stop_list(data: JSON, key: str, path: str = "") -> list[str]:
    """``stop``: a string or an array of strings."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise invalid(f"{path}{key}", "a string or an array of strings", value)


def non_empty_messages(data: JSON) -> list[Any]:
    messages = req_list(data, "messages")
    if not messages:
        raise InvalidRequest(
            "messages: at least one message is required", code="empty_messages", param="messages"
        )
    return messages


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()
