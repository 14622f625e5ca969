"""The shared full bodies use every key their door's parser reads, at every level.

The parser reads a decoded body through dictionaries that record each key
asked for; a key read where the body has none means the body misses a
field, and the tests built on it (type confusion, DLP field coverage) would
miss it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from llm_gateway.api import fields
from tests.api.test_type_confusion import DOORS

Read = tuple[str, str]  # (the dictionary's path, the key read)


class _Recorded(dict[str, Any]):
    def __init__(self, data: dict[str, Any], path: str, reads: set[Read]) -> None:
        super().__init__(data)
        self._path, self._reads = path, reads

    def get(self, key: str, default: Any = None) -> Any:
        self._reads.add((self._path, key))
        return _record(super().get(key, default), f"{self._path}.{key}", self._reads)

    def __getitem__(self, key: str) -> Any:
        self._reads.add((self._path, key))
        return _record(super().__getitem__(key), f"{self._path}.{key}", self._reads)


class _RecordedList(list[Any]):
    def __init__(self, data: list[Any], path: str, reads: set[Read]) -> None:
        super().__init__(data)
        self._path, self._reads = path, reads

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            yield _record(item, f"{self._path}[]", self._reads)


def _record(value: Any, path: str, reads: set[Read]) -> Any:
    if isinstance(value, dict) and not isinstance(value, _Recorded):
        return _Recorded(value, path, reads)
    if isinstance(value, list) and not isinstance(value, _RecordedList):
        return _RecordedList(value, path, reads)
    return value


def _present(body: Any, path: str = "$") -> set[Read]:
    found: set[Read] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            found.add((path, key))
            found |= _present(value, f"{path}.{key}")
    elif isinstance(body, list):
        for item in body:
            found |= _present(item, f"{path}[]")
    return found


@pytest.mark.parametrize("door", DOORS)
def test_the_body_has_every_key_the_parser_reads(
    door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse, body = DOORS[door]
    reads: set[Read] = set()
    decode = fields.decode_body
    monkeypatch.setattr(fields, "decode_body", lambda raw: _record(decode(raw), "$", reads))
    parse(orjson.dumps(body))
    assert reads, "the recording did not reach the parser"
    missing = reads - _present(body)
    assert not missing, f"{door}: the body lacks keys its parser reads: {sorted(missing)}"
