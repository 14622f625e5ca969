"""The rule engine: every rule, one prefilter pass, then only the rules that can fire.

A scan, in order:

1. ``normalise`` the text (a no-op for plain ASCII) and encode it once.
2. One pass of the prefilter (``backends``) says which rules can match: a
   rule is represented by its pattern, or by its keywords if it has any;
   two more probes look for digits typed apart and for what may be encoded
   text, so the decoding layer costs nothing on text that has none.
3. Each rule that fired runs its own RE2 pattern for spans; allowlist and
   validators decide on each value, then its context sets the score.
4. If the spaced-digits probe fired, the same on a view with those digits
   joined, keeping only what touches a joined run.
5. Encoded spans (base64, hex, URL, HTML and ``\\u`` escapes) are decoded
   and the decoded text scanned the same way, within a size and depth
   budget (``decoding``); a finding there covers the whole encoded span.
6. Overlaps are settled (``resolve``) and offsets mapped to the original text.

Everything is compiled in ``__init__``; a scan allocates little more than its
findings. The regex work is linear by RE2's construction; ours is too: the
normalised view and the digit runs are built in one pass, context windows and
validator inputs are bounded, and the span loop re-reads at most
``RESCAN_BYTES`` of each match, or what a validator trimmed off it (which
only the bounded phone and card checks do).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from llm_gateway.config.loader import ConfigError
from llm_gateway.dlp.backends import Prefilter, make_prefilter
from llm_gateway.dlp.builtin import builtin_rule_files
from llm_gateway.dlp.decoding import ENCODED, MAX_DEPTH, Budget, encoded_spans
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.identifiers import DEFAULT_PHONE_REGIONS, PhoneRegions
from llm_gateway.dlp.normalize import View, char_offsets, join_digit_runs, normalise
from llm_gateway.dlp.placeholders import is_stand_in
from llm_gateway.dlp.regex import Pattern
from llm_gateway.dlp.resolve import Candidate, resolve_overlaps
from llm_gateway.dlp.rules import MIN_SCORE, Rule, load_rules

# Nine or more digits typed one at a time, separated by up to three spaces, dots,
# dashes, slashes, underscores, commas, bars or en dashes ("4 1 1 1 - 1 1 1 1 ..."):
# how card numbers and SSNs dodge patterns.
SPACED_DIGITS = r"\d(?:[ .\-/_,|\x{2013}]{1,3}\d){8,}"
# A pattern may consume a few characters after its value as a boundary check
# (RE2 has no lookahead); the next search starts early enough to see them again.
RESCAN_BYTES = 8
# Longer runs of spaced digits are not joined (cards have at most 19 digits).
MAX_RUN_DIGITS = 40

_DIGIT_BYTES = tuple(bytes([d]) for d in b"0123456789")
_Span = tuple[int, int, int]  # rule index, start, end (bytes, then characters)


class RuleEngine:
    """Finds sensitive spans with the built-in detectors and the deployment's own rules."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        default_action: Action = Action.REDACT,
        backend: str = "re2",
    ) -> None:
        self._rules = tuple(rules)
        self.default_action = default_action
        self.backend = backend
        # Each rule's action under each default: the caller's default (a policy's
        # dlp_mode) must be known before overlaps are settled, as they rank by action.
        self._actions = {
            mode: tuple(rule.action or mode for rule in self._rules) for mode in Action
        }
        # A rule with keywords is represented in the prefilter by its keywords
        # alone: its pattern runs only when one occurs. That keeps patterns with
        # no literal anchor (40 base64 characters...) out of the shared DFA,
        # where they would multiply its states on random-looking text.
        probes: list[str] = []
        triggers: list[list[int]] = []
        probe_of_words: dict[tuple[str, ...], int] = {}
        for index, rule in enumerate(self._rules):
            if rule.keywords and rule.keywords in probe_of_words:
                triggers[probe_of_words[rule.keywords]].append(index)
                continue
            if rule.keywords:
                probe_of_words[rule.keywords] = len(probes)
            probes.append(_any_word(rule.keywords) if rule.keywords else rule.pattern.source)
            triggers.append([index])
        self._triggers = tuple(tuple(rules) for rules in triggers)
        self._spaced_probe = len(probes)
        probes.append(SPACED_DIGITS)
        self._encoded_probe = len(probes)
        probes.append(ENCODED)
        self._spaced = Pattern(SPACED_DIGITS)
        self._prefilter: Prefilter = make_prefilter(backend, probes)

    @classmethod
    def load(
        cls,
        custom_rules: Path | None,
        *,
        enable_secrets: bool = True,
        enable_pii: bool = True,
        default_action: Action = Action.REDACT,
        backend: str = "re2",
        phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS,
    ) -> RuleEngine:
        """Built-in rules (by family) plus the deployment's rule file, if any.

        ``phone_regions`` are the regions whose national phone formats are read
        (``DLP_PHONE_REGIONS``). ConfigError for a bad rule file or a custom rule
        named like a built-in one; BackendError (a ValueError) for an unknown or
        missing backend; ValueError for an unknown phone region.
        """
        phone = PhoneRegions(phone_regions)
        builtin: list[Rule] = []
        for path in builtin_rule_files(enable_secrets=enable_secrets, enable_pii=enable_pii):
            builtin += load_rules(path, builtin=True, phone=phone)
        custom = load_rules(custom_rules, phone=phone) if custom_rules is not None else []
        taken = {rule.name for rule in builtin}
        clashes = [
            f"{rule.origin}: rule {rule.name!r}: name: already used by a built-in rule"
            for rule in custom
            if rule.name in taken
        ]
        if custom_rules is not None and clashes:
            raise ConfigError(custom_rules, clashes)
        return cls([*custom, *builtin], default_action=default_action, backend=backend)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def scan(self, text: str, default_action: Action | None = None) -> list[Finding]:
        """Findings in ``text``, disjoint, sorted by start, offsets into ``text``.

        ``default_action`` replaces the engine's default for this scan (rules with
        their own action keep it).
        """
        if not text:
            return []
        actions = self._actions[default_action or self.default_action]
        candidates = self._candidates(text, actions, Budget(), depth=0)
        return [self._finding(c) for c in resolve_overlaps(candidates)]

    def _candidates(
        self, text: str, actions: tuple[Action, ...], budget: Budget, depth: int
    ) -> list[Candidate]:
        """Every rule's candidates in ``text`` (original offsets), overlaps not yet settled.

        Then the same in what encoded spans decode to (``decoding``), each of
        those candidates widened to the whole encoded span, up to MAX_DEPTH layers.
        """
        view = normalise(text)
        candidates: list[Candidate] = []
        runs, encoded = self._scan_view(view, candidates, actions, within=None)
        if runs:
            joined, joined_runs = join_digit_runs(view, runs)
            self._scan_view(joined, candidates, actions, within=joined_runs)
        if encoded and depth < MAX_DEPTH:
            self._decoded(view, candidates, actions, budget, depth)
        return candidates

    def _decoded(
        self,
        view: View,
        candidates: list[Candidate],
        actions: tuple[Action, ...],
        budget: Budget,
        depth: int,
    ) -> None:
        """Append the candidates found in what ``view``'s encoded spans decode to.

        A rule that already matched inside a span as written keeps its precise
        span there: decoding only adds what the plain text hid.
        """
        plain: _PlainSpans | None = None
        for start, end, decoded in encoded_spans(view.text, budget):
            inner = self._candidates(decoded, actions, budget, depth + 1)
            if not inner:
                continue
            span_start, span_end = view.original_span(start, end)
            if plain is None:
                plain = _PlainSpans(candidates)
            candidates += [
                replace(c, start=span_start, end=span_end)
                for c in inner
                if not plain.meets(c.order, span_start, span_end)
            ]

    def _scan_view(
        self,
        view: View,
        out: list[Candidate],
        actions: tuple[Action, ...],
        within: list[tuple[int, int]] | None,
    ) -> tuple[list[tuple[int, int]], bool]:
        """Append ``view``'s candidates to ``out``; return its spaced-digit runs (characters)
        and whether it may hold encoded text (the prefilter's ENCODED probe fired).

        With ``within``, only candidates overlapping one of those spans are kept
        and runs are not looked for (the view is already the joined one).
        """
        text = view.text
        data = text.encode("utf-8")
        fired = self._prefilter.matching(data)
        if not fired:
            return [], False
        triggers = self._triggers
        spans: list[_Span] = []
        for index in sorted(i for probe in fired if probe < len(triggers) for i in triggers[probe]):
            self._collect(index, data, spans)
        runs: list[tuple[int, int]] = []
        if within is None and self._spaced_probe in fired:
            runs = self._spaced_runs(data)
        if len(data) != len(text):  # not ASCII: byte offsets become character offsets
            offsets = char_offsets(
                data, [o for s in spans for o in s[1:]] + [o for r in runs for o in r]
            )
            spans = [(i, offsets[s], offsets[e]) for i, s, e in spans]
            runs = [(offsets[s], offsets[e]) for s, e in runs]
        for index, start, end in spans:
            if within is not None and not _overlaps_any(within, start, end):
                continue
            candidate = self._judge(index, view, start, end, actions[index])
            if candidate is not None:
                out.append(candidate)
        return runs, self._encoded_probe in fired

    def _collect(self, index: int, data: bytes, out: list[_Span]) -> None:
        """Every accepted match of rule ``index`` as (index, value start, value end) in bytes.

        Allowlist and validators are applied here, on the value's own text,
        because a validator may keep only the start of a value (a card without
        the CVV the pattern also took) and the next search must begin right
        after what was kept, or a second card just after it would be skipped.
        """
        rule = self._rules[index]
        pattern = rule.pattern
        judged = bool(rule.checks or rule.allowlist)
        size = len(data)
        position = 0
        while position <= size:
            found = pattern.search(data, position)
            if found is None:
                return
            start, end, value_start, value_end = found
            position = max(value_end, end - RESCAN_BYTES)
            if value_end > value_start:
                kept = _accepted(rule, data[value_start:value_end]) if judged else -1
                if kept < 0:
                    out.append((index, value_start, value_end))
                elif kept > 0:
                    out.append((index, value_start, value_start + kept))
                    if value_start + kept < value_end:  # trimmed: look again right after it
                        position = value_start + kept
            if position <= start:
                position = end if end > start else start + 1
            while position < size and data[position] & 0xC0 == 0x80:
                position += 1  # never start inside a UTF-8 sequence

    def _spaced_runs(self, data: bytes) -> list[tuple[int, int]]:
        """Runs of digits typed apart, in bytes; runs of more than MAX_RUN_DIGITS are left
        alone: no identifier we look for is that long, and joining them would only cost time."""
        runs = []
        position = 0
        while (found := self._spaced.search(data, position)) is not None:
            start, end = found[0], found[1]
            if sum(map(data[start:end].count, _DIGIT_BYTES)) <= MAX_RUN_DIGITS:
                runs.append((start, end))
            position = end
        return runs

    def _judge(
        self, index: int, view: View, start: int, end: int, action: Action
    ) -> Candidate | None:
        """Context and score: a candidate in original offsets, or None if too unsure.

        A secret's stand-in (``placeholders``) is kept as a low alert, never a block.
        """
        rule = self._rules[index]
        score = rule.score_at(view.text, start, end)
        if score < MIN_SCORE:
            return None
        original_start, original_end = view.original_span(start, end)
        severity, validated = rule.severity, rule.validated
        if rule.stand_ins and is_stand_in(view.text[start:end]):
            action, severity, validated = Action.ALERT, Severity.LOW, False
        return Candidate(
            start=original_start,
            end=original_end,
            score=score,
            action=action,
            severity=severity,
            builtin=rule.builtin,
            order=index,
            validated=validated,
        )

    def _finding(self, candidate: Candidate) -> Finding:
        rule = self._rules[candidate.order]
        return Finding(
            entity=rule.entity,
            label=rule.label,
            category=rule.category,
            start=candidate.start,
            end=candidate.end,
            score=round(candidate.score, 2),
            rule=rule.name,
            action=candidate.action,
            severity=candidate.severity,
        )


class _PlainSpans:
    """Each rule's candidates as found in the plain text, for "did it match in here"."""

    def __init__(self, candidates: list[Candidate]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {}
        for c in candidates:
            spans.setdefault(c.order, []).append((c.start, c.end))
        self._spans = {order: sorted(found) for order, found in spans.items()}

    def meets(self, order: int, start: int, end: int) -> bool:
        found = self._spans.get(order)
        if not found:
            return False
        i = bisect_right(found, (end, -1)) - 1  # the last span starting before ``end``
        return any(s < end and e > start for s, e in found[max(0, i - 1) : i + 1])


def _accepted(rule: Rule, raw: bytes) -> int:
    """Bytes of ``raw`` the rule keeps: 0 if allowlisted or rejected, else its validators'
    verdict (each may keep a shorter prefix, which the next one then checks)."""
    value = raw.decode("utf-8")
    if value in rule.allowlist:
        return 0
    for check in rule.checks:
        accepted = check(value)
        if accepted <= 0:
            return 0
        value = value[:accepted]
    return len(value) if raw.isascii() else len(value.encode("utf-8"))


def _any_word(words: tuple[str, ...]) -> str:
    """A case-insensitive RE2 pattern for any of ``words``, escaped for RE2 and Hyperscan alike."""
    escaped = (
        "".join(c if c.isalnum() or not c.isascii() else f"\\x{ord(c):02x}" for c in word)
        for word in words
    )
    return "(?i)(?:" + "|".join(escaped) + ")"


def _overlaps_any(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) meets one of ``spans`` (sorted, disjoint), by bisection."""
    i = bisect_right(spans, (start, 1 << 62)) - 1
    if i >= 0 and spans[i][1] > start:
        return True
    return i + 1 < len(spans) and spans[i + 1][0] < end
