"""The tool outputs flattened into facts an answer's claims can be looked up in.

JSON is walked into leaves with their key paths (``Reservations[0].Instances[1]
.State.Name = "stopped"``); plain text is scanned line by line. From both come
numbers (with the words of their keys, for telling "the total" from "the
count"), the counts an answer may compute (items of each list, how many of
them share a value), sums, minima, maxima and means of each list's numeric
fields, dates, clock times, states (running, stopped, ...) with the object
they belong to, and the identifiers that name those objects.

The question and the context are known text too (a number the user gave is
not an invented one), but they are kept apart from the tool evidence: they
hold no states and are never cited.

Everything is bounded: the text indexed is capped at ``max_evidence_chars``
in all, the leaves walked and the numbers kept are capped, so a megabyte of
output costs a bounded amount of time and memory.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from llm_gateway.grounding.identifiers import find_identifiers
from llm_gateway.grounding.model import Conversation
from llm_gateway.grounding.normalize import (
    Date,
    find_compact_durations,
    find_dates,
    find_numbers,
    find_times,
    key_words,
    stem,
    unit_of,
    unit_of_key,
)
from llm_gateway.grounding.states import state_class

QUESTION = -1  # a fact's source: the user's question
CONTEXT = -2  # the system prompt and earlier assistant text

MAX_LEAVES = 200_000
MAX_NEAR_MISS_CHARS = 300_000  # identifiers kept for near-miss comparison come from this much
MAX_LINES = 50_000
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,119}")
_NONE_WORDS = frozenset({"without", "lack", "no", "none", "zero", "missing"})
_ID_KEYS = frozenset({"id", "number", "no", "num"})
_CLOCK_HINT = re.compile(r"\d:\d\d")
_SEGMENT = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,40}")
_STATE_TOKEN = re.compile(r"[A-Za-z][A-Za-z-]{1,30}")


@dataclass(frozen=True, slots=True)
class Num:
    """A number the evidence states or lets one compute."""

    value: float
    source: int  # the tool's index, or QUESTION / CONTEXT
    words: frozenset[str]  # stems of its key's names, or of the words around it
    unit: str | None
    where: str  # the key path, or "text"
    how: str | None = None  # None when stated; "count", "sum", ... when derived
    scope: str = ""  # the object it belongs to: a list item's path, or "line N" of a text
    key: frozenset[str] = frozenset()  # the stems of its own key's words (not its parent's)


@dataclass(slots=True)
class Evidence:
    """Everything the answer may rely on, indexed for lookup."""

    names: list[tuple[str | None, str | None]]  # each tool's (call id, name)
    numbers: list[Num] = field(default_factory=list)
    derived: list[Num] = field(default_factory=list)
    counts: list[Num] = field(default_factory=list)  # items of lists, and how many share a value
    texts: list[tuple[int, str]] = field(default_factory=list)  # lower-cased text per source
    lines: list[tuple[int, list[str]]] = field(default_factory=list)  # plain outputs' lines
    dates: dict[tuple[int | None, int, int], set[int]] = field(default_factory=dict)
    times: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    identifiers: dict[str, tuple[str, int]] = field(default_factory=dict)  # value -> kind, source
    scope_states: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    group_states: dict[tuple[int, str], Counter[str]] = field(default_factory=dict)
    entities: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    all_states: dict[str, int] = field(default_factory=dict)  # state -> first source
    time_scopes: dict[tuple[int, int], list[tuple[int, str]]] = field(default_factory=dict)
    paged: set[int] = field(default_factory=set)
    call_words: dict[int, frozenset[str]] = field(default_factory=dict)  # a call's argument words
    flags: dict[str, tuple[int, set[bool]]] = field(
        default_factory=dict
    )  # MultiAZ: false  # sources that say more items exist than listed
    truncated: bool = False
    _sorted: list[tuple[float, int]] = field(default_factory=list)
    _sorted_derived: list[tuple[float, int]] = field(default_factory=list)

    @property
    def has_tools(self) -> bool:
        return bool(self.names)

    def tool_id(self, source: int) -> str | None:
        """The id a claim's ``tool_call_id`` carries: the call id, else the tool's name."""
        if source < 0 or source >= len(self.names):
            return None
        call_id, name = self.names[source]
        return call_id or name

    def near(self, value: float, low: float, high: float, derived: bool = False) -> Iterator[Num]:
        """The facts whose value lies in [low, high] (``value`` is for the caller's ordering)."""
        del value
        index = self._sorted_derived if derived else self._sorted
        pool = self.derived if derived else self.numbers
        i = bisect.bisect_left(index, (low, -1))
        while i < len(index) and index[i][0] <= high:
            yield pool[index[i][1]]
            i += 1

    def finish(self) -> None:
        """Sort the numbers for range lookups; called once all sources are in."""
        self.derived.extend(self.counts)
        self._sorted = sorted((n.value, i) for i, n in enumerate(self.numbers))
        self._sorted_derived = sorted((n.value, i) for i, n in enumerate(self.derived))


def build(conversation: Conversation, max_chars: int) -> Evidence:
    """The evidence of a conversation, its tool text capped at ``max_chars`` in all."""
    evidence = Evidence(names=[(t.call_id, t.name) for t in conversation.tools])
    budget = max(0, max_chars)
    latest = _superseded(conversation)
    for index, tool in enumerate(conversation.tools):
        if index in latest:
            continue  # the same call made again later: its newer result is the one that holds
        arguments = tool.arguments[:budget]
        budget -= len(arguments)
        output = tool.output[:budget]
        budget -= len(output)
        if len(output) < len(tool.output) or len(arguments) < len(tool.arguments):
            evidence.truncated = True
        tool_words = key_stems(tool.name or "")
        evidence.call_words[index] = frozenset(
            stem(w) for w in _WORD.findall(arguments[:2000].lower())[:200] if len(w) >= 3
        )
        _add_source(evidence, index, arguments, tool_words, is_arguments=True)
        _add_source(evidence, index, output, tool_words, is_arguments=False)
        if tool.is_error:
            _add_state(evidence, index, "", "error", "failed")
    for source, text in ((QUESTION, conversation.question), (CONTEXT, conversation.context)):
        if len(text) > max_chars:
            evidence.truncated = True
        _add_text_facts(evidence, source, text[:max_chars], frozenset(), states=False)
    evidence.finish()
    return evidence


def _superseded(conversation: Conversation) -> set[int]:
    """The tool results that a later call of the same tool with the same arguments replaced
    (a status polled twice: "processing", then "shipped")."""
    last: dict[tuple[str | None, str], int] = {}
    for index, tool in enumerate(conversation.tools):
        if tool.name is not None and not tool.is_error:
            last[(tool.name, _canonical(tool.arguments))] = index
    return {
        index
        for index, tool in enumerate(conversation.tools)
        if tool.name is not None
        and not tool.is_error
        and last.get((tool.name, _canonical(tool.arguments)), index) != index
    }


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        return arguments.strip()


def _add_source(
    evidence: Evidence, source: int, text: str, tool_words: frozenset[str], is_arguments: bool
) -> None:
    stripped = text.strip()
    document: Any = None
    if stripped[:1] in ("{", "["):
        try:
            document = json.loads(stripped)
        except ValueError:
            document = None
    if isinstance(document, dict | list):
        evidence.texts.append((source, text.lower()))
        _scan_dates_times(evidence, source, text)
        _scan_identifiers(evidence, source, text)
        _Walker(evidence, source, tool_words, "arguments" if is_arguments else "").walk(document)
    elif stripped:
        _add_text_facts(evidence, source, text, tool_words, states=not is_arguments)


def _scan_dates_times(evidence: Evidence, source: int, text: str) -> None:
    for _, _, readings in find_dates(text):
        for date in readings:
            evidence.dates.setdefault((date.year, date.month, date.day), set()).add(source)
            evidence.dates.setdefault((None, date.month, date.day), set()).add(source)
    for _, _, clock in find_times(text):
        evidence.times.setdefault(clock, set()).add(source)


def _scan_identifiers(evidence: Evidence, source: int, text: str) -> None:
    for found in find_identifiers(text[:MAX_NEAR_MISS_CHARS]):
        evidence.identifiers.setdefault(found.value, (found.kind, source))


def _add_state(evidence: Evidence, source: int, scope: str, group: str, state: str) -> None:
    evidence.scope_states.setdefault((source, scope), set()).add(state)
    evidence.group_states.setdefault((source, group), Counter())[state] += 1
    evidence.all_states.setdefault(state, source)


def _add_text_facts(
    evidence: Evidence, source: int, text: str, tool_words: frozenset[str], states: bool
) -> None:
    """Numbers (with the words before them), dates, times, ids, and per line states and ids."""
    if not text:
        return
    evidence.texts.append((source, text.lower()))
    _scan_dates_times(evidence, source, text)
    if source >= 0:
        _scan_identifiers(evidence, source, text)
    line, position = 0, 0
    for token in sorted(find_numbers(text, keyed=source >= 0), key=lambda t: t.start):
        line += text.count("\n", position, token.start)
        position = token.start
        window = text[max(0, token.start - 40) : token.start]
        window = window[window.rfind("\n") + 1 :]
        words = _near_words(window, text[token.end : token.end + 20])
        evidence.numbers.append(
            Num(token.value, source, words, token.unit, "text", scope=f"line {line}")
        )
    if source >= 0:
        _add_durations(evidence, source, text, frozenset(), "text")
    if source < 0:
        return
    lines = text.splitlines()[:MAX_LINES]
    filled = [line.lower() for line in lines if line.strip()]
    evidence.lines.append((source, filled))
    for n in (len(filled), len(filled) - 1):
        if n >= 0:
            evidence.counts.append(Num(float(n), source, tool_words, None, "text", "lines"))
    if states:
        _add_line_states(evidence, source, lines)
    _add_table(evidence, source, lines)
    for match in _ROWS_FOOTER.finditer(text[-2000:]):
        # psql's "(0 rows)": a count of the things the call asked for (its arguments' words)
        words = tool_words | evidence.call_words.get(source, frozenset())
        evidence.counts.append(Num(float(match[1]), source, words, None, "text", "count"))


_ROWS_FOOTER = re.compile(r"^\((\d{1,9}) rows?\)$", re.MULTILINE)
MAX_TABLE_ROWS = 10_000


def _add_table(evidence: Evidence, source: int, lines: list[str]) -> None:
    """A "|"-separated table's numeric columns: their sums, minima, maxima and means."""
    header = next((i for i, line in enumerate(lines[:5]) if line.count("|") >= 1), None)
    if header is None:
        return
    names = [cell.strip().lower() for cell in lines[header].split("|")]
    columns: dict[int, list[float]] = defaultdict(list)
    for line in lines[header + 1 : header + 1 + MAX_TABLE_ROWS]:
        cells = line.split("|")
        if len(cells) != len(names):
            continue
        for index, cell in enumerate(cells):
            cell = cell.strip()
            value = _plain_number(cell)
            if value is not None:
                columns[index].append(value)
    for index, values in columns.items():
        if len(values) < 2 or not names[index]:
            continue
        words = key_stems(names[index])
        mean = sum(values) / len(values)
        for how, value in (("sum", sum(values)), ("min", min(values)), ("max", max(values)),
                           ("mean", mean)):  # fmt: skip
            evidence.derived.append(
                Num(value, source, words | {how}, None, f"table[].{names[index]}", how)
            )


def _plain_number(cell: str) -> float | None:
    if not cell or not (cell[0].isdigit() or cell[0] == "-"):
        return None
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        return None


def _add_line_states(evidence: Evidence, source: int, lines: list[str]) -> None:
    """Each line of a plain output as an object: its state words and its id-like tokens."""
    for number, line in enumerate(lines):
        scope = f"line {number}"
        header = number == 0 and line.strip() == line.strip().upper()
        for word in () if header else _STATE_TOKEN.findall(line):
            state = state_class(word)
            if state is not None:
                _add_state(evidence, source, scope, "lines", state)
        for token in _TOKEN.findall(line):
            # A table's names ("api", "db-2") name its rows; words common to many rows
            # name none (the lookup leaves out words of more than a few rows).
            low = token.lower()
            if len(low) >= 3 or any(c.isdigit() for c in low):
                evidence.entities.setdefault(low, []).append((source, scope))


class _Walker:
    """One JSON document's walk: leaves into facts, lists into counts and aggregates."""

    def __init__(self, evidence: Evidence, source: int, tool_words: frozenset[str], root: str):
        self.evidence = evidence
        self.source = source
        self.tool_words = tool_words
        self.root = root
        self.leaves = 0
        self.columns: dict[str, list[float]] = defaultdict(list)
        self.column_words: dict[str, frozenset[str]] = {}
        self.histograms: dict[str, Counter[str]] = defaultdict(Counter)
        self.list_sizes: Counter[str] = Counter()
        self.list_words: dict[str, frozenset[str]] = {}
        self.units: dict[str, str] = {}
        self.empty: set[str] = set()
        self.item_fields: dict[
            tuple[str, str], list[str]
        ] = {}  # an item's field=value  # a dict's path -> the unit its "Unit" field names

    def walk(self, document: Any) -> None:
        # (node, path, general path, key, parent key, scope, enclosing list's general path)
        stack: list[tuple[Any, str, str, str, str, str, str]] = [
            (document, self.root, self.root, "", "", self.root, "")
        ]
        while stack and self.leaves < MAX_LEAVES:
            node, path, general, key, parent, scope, within = stack.pop()
            if isinstance(node, dict):
                node = _tabular(node)
                self._dict(node, path, general, key, scope, within, stack)
            elif isinstance(node, list):
                words = key_stems(key) if key else self.tool_words
                self.list_sizes[general] += len(node)
                if not node and general not in self.empty:
                    # "requested_reviewers": []: some item has none of them ("no reviewers")
                    self.empty.add(general)
                    self.evidence.counts.append(
                        Num(0.0, self.source, words, None, general, "count")
                    )
                self.list_words[general] = self.list_words.get(general, frozenset()) | words
                for i in range(len(node) - 1, -1, -1):
                    stack.append((node[i], f"{path}[{i}]", f"{general}[]", key, parent,
                                  f"{path}[{i}]", general))  # fmt: skip
            else:
                self.leaves += 1
                self._leaf(node, path, general, key, parent, scope, within)
        self._finish()

    def _dict(
        self,
        node: dict[str, Any],
        path: str,
        general: str,
        key: str,
        scope: str,
        within: str,
        stack: list[tuple[Any, str, str, str, str, str, str]],
    ) -> None:
        kind = node.get("kind")
        self._condition(node, scope)
        unit = next(
            (v for k, v in node.items() if k.lower() == "unit" and isinstance(v, str)), None
        )
        if unit is not None and unit_of(unit) is not None:
            self.units[path] = unit.lower()  # {"Average": 5368709120.0, "Unit": "Bytes"}
        numeric = [v for v in node.values() if _is_number(v)]
        if len(numeric) >= 2:
            words = key_stems(key) | {"total", "sum"}
            self.evidence.derived.append(
                Num(float(sum(numeric)), self.source, words, unit_of_key(key), path, "sum")
            )
        for name, value in node.items():
            child = f"{path}.{name}" if path else name
            child_general = f"{general}.{name}" if general else name
            if isinstance(value, list) and isinstance(kind, str) and kind.endswith("List"):
                words = key_stems(kind[:-4]) | self.tool_words
                self.list_words[child_general] = (
                    self.list_words.get(child_general, frozenset()) | words
                )
            stack.append((value, child, child_general, name, key, scope, within))

    def _leaf(
        self, value: Any, path: str, general: str, key: str, parent: str, scope: str, within: str
    ) -> None:
        evidence = self.evidence
        words = key_stems(parent) | key_stems(key)
        if isinstance(value, bool):
            self._flag(key, value, scope, words)
            return
        if _is_number(value):
            number = float(value)
            evidence.numbers.append(
                Num(
                    number,
                    self.source,
                    words,
                    unit_of_key(key)
                    or self.units.get(path.rsplit(".", 1)[0] if "." in path else ""),
                    path,
                    scope=scope,
                    key=key_stems(key),
                )
            )
            if "[]" in general:
                self.columns[general].append(number)
                self.column_words[general] = words
            if scope and number == int(number) and key_stems(key) & _ID_KEYS:
                _add_names(evidence, self.source, scope, str(int(number)))  # "run #1287"
            return
        if not isinstance(value, str) or not value:
            return
        if len(value) <= 120:
            _add_names(evidence, self.source, scope, value.lower())
        if len(value) <= 30 and scope and _CLOCK_HINT.search(value):
            _add_time_scopes(evidence, self.source, scope, value)
        state = state_class(value) if len(value) <= 30 else None
        if state is not None:
            group = f"{within}|{general[len(within) :]}"
            _add_state(evidence, self.source, scope, group, state)
        if (
            "[]" in general
            and len(value) <= 60
            and value.count(" ") <= 2  # a category is a word or three, not a sentence
            and sum(c.isdigit() for c in value) <= 2
        ):
            # How many items share a value ("3 running", "2 t3.medium"); ids and times, with
            # more digits, are unique, so left out.
            self._share(within, general, scope, value)
        if any(c.isdigit() for c in value):
            self._string_numbers(value, path, general, key, scope, words)
        if " " in value and len(value) <= 1000:
            self._number_words(value, path, scope, words)

    def _flag(self, key: str, value: bool, scope: str, stems: frozenset[str]) -> None:
        """A boolean field: a state when its key is one ("merged": true), and a feature the
        answer may claim or deny when its key is a name of two words or more (MultiAZ);
        ``IsTruncated``/``has_more`` true: the output is one page of a listing."""
        if value and ("truncated" in stems or "incomplete" in stems or {"has", "more"} <= stems):
            self.evidence.paged.add(self.source)
        state = state_class(key)
        if state is not None and value:
            _add_state(self.evidence, self.source, scope, "flags", state)
        words = key_words(key)
        if words[:1] in (["is"], ["has"]):
            words = words[1:]
        if len(words) >= 2 and len(self.evidence.flags) < 1000:
            name = "".join(words)
            _, values = self.evidence.flags.setdefault(name, (self.source, set()))
            values.add(value)

    def _number_words(self, value: str, path: str, scope: str, words: frozenset[str]) -> None:
        """ "bugfix releases every two months": a snippet's number words are its numbers."""
        for token in find_numbers(value, words=True):
            if token.word:
                self.evidence.numbers.append(
                    Num(token.value, self.source, words, token.unit, path, scope=scope)
                )

    def _condition(self, node: dict[str, Any], scope: str) -> None:
        """``{"type": "Ready", "status": "False"}``: a condition's state is its item's (a node's
        conditions list says whether the node is ready)."""
        kind, status = node.get("type"), node.get("status")
        if not (isinstance(kind, str) and status in ("True", "False", True, False)):
            return
        holds = status in ("True", True)
        state = state_class(kind if holds else f"not-{kind}")
        end = scope.rfind("].")
        if state is not None and end > 0:
            _add_state(self.evidence, self.source, scope[: end + 1], "conditions", state)

    def _share(self, within: str, general: str, scope: str, value: str) -> None:
        shared = f"{general[len(within) :]}={value.lower()}"
        self.histograms[within][shared] += 1
        fields = self.item_fields.setdefault((within, scope), [])
        if len(fields) < 8:
            fields.append(shared)

    def _pairs(self) -> dict[str, Counter[tuple[str, str]]]:
        """How many items share two categories ("critical" and "firing"), per list (bounded)."""
        pairs: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
        total = 0
        for (within, _scope), fields in self.item_fields.items():
            for pair in _pairs_of(fields, self.histograms[within]):
                if pair not in seen[within] and total >= _MAX_PAIRS:
                    continue
                seen[within].add(pair)
                pairs[within][pair] += 1
                total += 1
        for within, counter in pairs.items():
            singles = [f for f, n in self.histograms[within].items() if n >= 2]
            for i, a in enumerate(sorted(singles)):  # and none: "no critical alert is firing"
                for b in sorted(singles)[i + 1 :]:
                    if a.split("=", 1)[0] != b.split("=", 1)[0] and (a, b) not in counter:
                        counter[(a, b)] = 0
        return pairs

    def _string_numbers(
        self, value: str, path: str, general: str, key: str, scope: str, words: frozenset[str]
    ) -> None:
        """The numbers in a string value ("1234.5600", "91% used", "16Gi")."""
        tokens = list(find_numbers(value, keyed=True))
        for token in tokens:
            unit = token.unit or unit_of_key(key)
            if token.percent:
                unit = None
            self.evidence.numbers.append(
                Num(token.value, self.source, words, unit, path, scope=scope, key=key_stems(key))
            )
        if len(value) <= 40:
            _add_durations(self.evidence, self.source, value, words, path, scope)
        if "[]" in general and len(tokens) == 1 and tokens[0].text == value.strip():
            # "Amount": "1234.5600": a number written as a string is a column's value too
            self.columns[general].append(tokens[0].value)
            self.column_words[general] = words

    def _finish(self) -> None:
        evidence, source = self.evidence, self.source
        for general, values in self.columns.items():
            if len(values) < 2:
                continue
            words = self.column_words[general]
            unit = unit_of_key(general.rsplit(".", 1)[-1])
            mean = sum(values) / len(values)
            aggregates = (("sum", sum(values)), ("min", min(values)), ("max", max(values)))
            for how, value in (*aggregates, ("mean", mean), ("median", _median(values))):
                evidence.derived.append(Num(value, source, words | {how}, unit, general, how))
            zeros = sum(1 for v in values if v == 0)
            if 0 < zeros < len(values):
                # "MFADevices": 0 for three users: "three users lack MFA", "three have none"
                evidence.counts.append(
                    Num(float(zeros), source, words | _NONE_WORDS, None, general, "count of none")
                )
                evidence.counts.append(
                    Num(float(len(values) - zeros), source, words, None, general, "count of some")
                )
            negative = [v for v in values if v < 0]
            if negative and len(negative) < len(values):
                # A ledger's debits and credits: what went out and what came in, and how many.
                for how, part in (("sum of negatives", negative),
                                  ("sum of positives", [v for v in values if v > 0])):  # fmt: skip
                    evidence.derived.append(
                        Num(abs(sum(part)), source, words | {"sum"}, unit, general, how)
                    )
                    evidence.counts.append(
                        Num(float(len(part)), source, words, None, general, f"count of {how[7:]}")
                    )
        pairs = self._pairs()
        for general, size in self.list_sizes.items():
            words = self.list_words.get(general, frozenset())
            for (a, b), count in pairs.get(general, Counter()).items():
                both = key_stems(a.split("=", 1)[-1]) | key_stems(b.split("=", 1)[-1])
                evidence.counts.append(
                    Num(float(count), source, words | both, None, general, f"count of {a}&{b}")
                )
            evidence.counts.append(Num(float(size), source, words, None, general, "count"))
            for shared, count in self.histograms.get(f"{general}", Counter()).items():
                value_words = key_stems(shared.split("=", 1)[-1])
                evidence.counts.append(
                    Num(
                        float(count),
                        source,
                        words | value_words,
                        None,
                        general,
                        f"count of {shared}",
                    )
                )


_MAX_PAIRS = 2000


def _pairs_of(fields: list[str], single: Counter[str]) -> Iterator[tuple[str, str]]:
    shared = sorted(f for f in fields if single[f] >= 2)  # categories, not one item's name
    for i, a in enumerate(shared):
        for b in shared[i + 1 :]:
            if a.split("=", 1)[0] != b.split("=", 1)[0]:
                yield a, b


def _add_durations(
    evidence: Evidence, source: int, text: str, words: frozenset[str], where: str, scope: str = ""
) -> None:
    """kubectl-style ages ("3d4h", "2m ago") as durations in seconds."""
    line, position = 0, 0
    for start, seconds in find_compact_durations(text):
        if where == "text":
            line += text.count("\n", position, start)
            position = start
            scope = f"line {line}"
        evidence.numbers.append(Num(seconds, source, words, "s", where, scope=scope))


def _add_time_scopes(evidence: Evidence, source: int, scope: str, value: str) -> None:
    """The list items a clock time belongs to (an event's start and end)."""
    for _, _, clock in find_times(value):
        places = evidence.time_scopes.setdefault(clock, [])
        if len(places) < 50:
            places.append((source, scope))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _add_names(evidence: Evidence, source: int, scope: str, value: str) -> None:
    """A short string value names its object, and so do its words ("SELECT * FROM orders")."""
    evidence.entities.setdefault(value, []).append((source, scope))
    if " " in value:
        for word in set(_WORD.findall(value)[:12]):
            if len(word) >= 4:
                evidence.entities.setdefault(word, []).append((source, scope))


@lru_cache(maxsize=65_536)
def _near_words(before: str, after: str) -> frozenset[str]:
    """The stems of the three words before a number in its line and the one after it."""
    near = (*_WORD.findall(before)[-3:], *_WORD.findall(after)[:1])
    return frozenset(stem(w) for w in near)


@lru_cache(maxsize=8192)
def key_stems(key: str) -> frozenset[str]:
    """The stems of a key's words (keys repeat in every item of a list: cached)."""
    words = {stem(w) for w in key_words(key)}
    # "p95_ms" is p95 too, not only "p" and "95": a letter-and-digit word of its own
    words.update(w for w in _SEGMENT.split(key.lower()) if w[:1].isalpha() and w[-1:].isdigit())
    return frozenset(words)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tabular(node: dict[str, Any]) -> dict[str, Any]:
    """``{"columns": [...], "rows": [[...]]}`` with its rows as objects keyed by the columns."""
    columns, rows = node.get("columns"), node.get("rows")
    if not (isinstance(columns, list) and isinstance(rows, list)):
        return node
    if not all(isinstance(c, str) for c in columns) or not all(
        isinstance(r, list) and len(r) == len(columns) for r in rows
    ):
        return node
    return {**node, "rows": [dict(zip(columns, row, strict=True)) for row in rows]}


def line_counts(evidence: Evidence, words: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """For each plain output, how many of its lines mention one of ``words``: (source, n, word)."""
    wanted = [w for w in words if len(w) >= 3]
    for source, lines in evidence.lines:
        for word in wanted:
            n = sum(1 for line in lines if word in line)
            if n:
                yield source, n, word


def dates_near(evidence: Evidence, date: Date) -> list[tuple[int | None, int, int]]:
    """The evidence's dates that share a year (when given) with ``date``, nearest first."""
    known = [d for d in evidence.dates if d[0] is not None]
    if date.year is not None:
        known = [d for d in known if d[0] == date.year]
    target = date.month * 31 + date.day
    return sorted(known, key=lambda d: abs(d[1] * 31 + d[2] - target))
