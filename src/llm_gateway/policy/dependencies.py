"""Which parts of the input a policy's decision can depend on, read from its source.

A decision is a pure function of the input and the bundle (modules and data)
when the policy calls no built-in whose answer changes between calls (the clock,
randomness, the network). If, besides, every reference to the input is a static
path (``input.user.role``, ``input.request.features[_]``), the decision depends
only on the values at those paths, and two inputs that agree on them get the
same decision: the embedded engine keeps its decisions by those values
(:class:`~llm_gateway.policy.embedded.EmbeddedPolicy`). The shipped policy reads
seven paths, none of which changes from one request of a caller to the next, so
a caller's requests are decided once per bundle and input shape, not each time.

The analysis is conservative: whatever it cannot account for makes the policy
uncacheable (every decision evaluated), with the reason logged at start-up:

- ``input`` used other than as ``input.<name>...`` (``input[k]``, ``x := input``,
  ``walk(input, ...)``, ``with input as ...``), or imported (``import input...``);
- a call to anything but the policy's own functions (``data.`` paths, names
  defined in the modules, and names under an imported ``data`` path) and the
  built-ins in :data:`PURE_BUILTINS`, whose answers depend on their arguments only.

Comments and string literals are blanked out first, so a path written in a
comment or a message is neither counted nor held against the policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PURE_BUILTINS", "InputPaths", "input_paths"]

#: Built-ins whose answer depends on their arguments only (OPA's names). Anything
#: else a policy calls (``time.now_ns``, ``rand.intn``, ``uuid.rfc4122``, ``http.send``,
#: ``net.lookup_ip_addr``, ``opa.runtime``...) makes its decisions uncacheable.
PURE_BUILTINS = frozenset(
    """
    abs all any array.concat array.reverse array.slice base64.decode base64.encode
    base64.is_valid base64url.decode base64url.encode base64url.encode_no_pad bits.and
    bits.lsh bits.negate bits.or bits.rsh bits.xor cast_array cast_boolean cast_null
    cast_object cast_set cast_string ceil concat contains count crypto.md5 crypto.sha1
    crypto.sha256 endswith floor format_int glob.match glob.quote_meta hex.decode
    hex.encode indexof indexof_n intersection io.jwt.decode is_array is_boolean is_null
    is_number is_object is_set is_string json.filter json.is_valid json.marshal json.patch
    json.remove json.unmarshal lower max min net.cidr_contains net.cidr_contains_matches
    net.cidr_expand net.cidr_intersects net.cidr_is_valid net.cidr_merge numbers.range
    numbers.range_step object.filter object.get object.keys object.remove object.subset
    object.union object.union_n print product regex.find_all_string_submatch_n
    regex.find_n regex.is_valid regex.match regex.replace regex.split
    regex.template_match replace round semver.compare semver.is_valid sort split sprintf
    startswith strings.any_prefix_match strings.any_suffix_match strings.count
    strings.replace_n strings.reverse substring sum time.add_date time.clock time.date
    time.diff time.parse_duration_ns time.parse_ns time.parse_rfc3339_ns time.weekday
    to_number trace trim trim_left trim_prefix trim_right trim_space trim_suffix
    type_name union units.parse units.parse_bytes upper urlquery.decode
    urlquery.decode_object urlquery.encode urlquery.encode_object yaml.is_valid
    yaml.marshal yaml.unmarshal
    """.split()  # noqa: SIM905 (a list of 130 names reads better as words)
)

# Words that can stand before "(" without being a call.
_KEYWORDS = frozenset({"if", "not", "some", "every", "in", "else", "with", "as", "default",
                       "package", "import", "contains", "or", "and"})  # fmt: skip

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INPUT = re.compile(rf"(?<![\w.])input((?:\.{_NAME})*)")
_CALL = re.compile(rf"(?<![\w.])({_NAME}(?:\.{_NAME})*)\s*\(")
_FUNCTION_HEAD = re.compile(rf"^\s*({_NAME})\s*\(", re.MULTILINE)
_IMPORT_INPUT = re.compile(r"^\s*import\s+input\b", re.MULTILINE)
_IMPORT_DATA = re.compile(rf"^\s*import\s+data((?:\.{_NAME})+)(?:\s+as\s+({_NAME}))?", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class InputPaths:
    """The input paths a policy reads (``paths``), or why its decisions cannot be kept
    by them (``refusal``; ``paths`` is then empty)."""

    paths: tuple[tuple[str, ...], ...] = ()
    refusal: str | None = None

    @property
    def cacheable(self) -> bool:
        return self.refusal is None


def input_paths(sources: Iterable[str]) -> InputPaths:
    """The paths under ``input`` that the Rego ``sources`` read, shortest covering set."""
    texts = [_code_only(source) for source in sources]
    defined = {name for text in texts for name in _FUNCTION_HEAD.findall(text)}
    aliases = tuple(
        f"{alias or path.rsplit('.', 1)[-1]}."
        for text in texts
        for path, alias in _IMPORT_DATA.findall(text)
    )
    found: set[tuple[str, ...]] = set()
    for text in texts:
        if _IMPORT_INPUT.search(text):
            return InputPaths(refusal="it imports input")
        for match in _INPUT.finditer(text):
            if not match.group(1):
                return InputPaths(refusal="it reads input as a whole (not input.<name>)")
            found.add(tuple(match.group(1)[1:].split(".")))
        for name in _CALL.findall(text):
            if name in _KEYWORDS or name in defined or name.startswith(("data.", *aliases)):
                continue
            if name not in PURE_BUILTINS:
                return InputPaths(refusal=f"it calls {name}(), whose answer may change")
    return InputPaths(paths=_covering(found))


def _covering(paths: set[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """Drop each path that a shorter one covers (input.user covers input.user.role)."""
    kept: list[tuple[str, ...]] = []
    for path in sorted(paths, key=len):
        if not any(path[: len(prefix)] == prefix for prefix in kept):
            kept.append(path)
    return tuple(sorted(kept))


def _code_only(source: str) -> str:
    """``source`` with its comments removed and its string literals emptied."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif ch == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            out.append('""')
            i += 1
        elif ch == "`":
            end = source.find("`", i + 1)
            out.append('""')
            i = n if end < 0 else end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
