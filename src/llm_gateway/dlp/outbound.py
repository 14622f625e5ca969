"""Scanning a streamed answer before its bytes reach the client, with a bounded hold-back.

Text is released only after it has been scanned. The last ``holdback``
characters stay unreleased, so that a span split across chunks is seen whole
before any of it leaves; a finding that straddles the release point holds the
point back to its start. Text is released in steps of ``RELEASE_STEP``
characters or more, so the delay this adds is bounded by the time the model
takes to produce ``holdback + RELEASE_STEP`` more characters (80 by default),
and the end of the stream releases the rest. With no hold-back, each chunk is
scanned and released on its own.

A span longer than the hold-back (a whole PEM key, say) can only be
recognised once it is complete. When it starts the way a secret does (a
literal prefix of a rule, ``AKIA``, ``sk-proj-``; a private key's armour),
release stops before that start until the value is complete or
``DLP_STREAM_HOLDBACK_MAX`` characters have arrived after it
(:mod:`llm_gateway.dlp.prefixes`); a longer secret without a recognisable
start can only be caught by a hold-back longer than it. With no hold-back,
each chunk is released on its own unless a secret's whole prefix has arrived.

The scan sees a little already-released text before the window as context
(``SSN:`` before a number), but never reports findings inside it.
"""

from __future__ import annotations

from collections.abc import Callable

from llm_gateway.dlp.findings import Action, Finding
from llm_gateway.dlp.operators import replace_marker
from llm_gateway.dlp.prefixes import SecretStarts

CONTEXT_CHARS = 32
# Text is released in steps of at least this many characters, so that a stream
# of one-word chunks is scanned every few words rather than at every chunk.
RELEASE_STEP = 16


class HeldText:
    """One channel of a streamed answer (its text, or one tool call's arguments)."""

    def __init__(
        self,
        scan: Callable[[str], list[Finding]],
        holdback: int,
        starts: SecretStarts | None = None,
    ) -> None:
        self.scan = scan
        self.holdback = holdback
        self.starts = starts
        self.pending = ""
        self.context = ""  # the tail of what was released, for the next scan
        self.findings: list[Finding] = []  # what was acted on, for the report
        self._due = holdback + RELEASE_STEP if holdback else 0  # pending size worth a scan
        self._holding_start = False  # release stopped before a secret's start

    def feed(self, chunk: str) -> str:
        """Text that may be released now, redacted. Raises nothing: blocks are in ``blocked``."""
        self.pending += chunk
        if self._holding_start and self.starts is not None and self.starts.may_end_a_run(chunk):
            self._due = 0  # the secret held back for may be complete now: look again
        return self._release(final=False)

    def finish(self) -> str:
        return self._release(final=True)

    @property
    def blocked(self) -> bool:
        return any(f.action is Action.BLOCK for f in self.findings)

    def _release(self, *, final: bool) -> str:
        if not self.pending:
            return ""
        if not final and len(self.pending) < self._due:
            return ""  # nothing, or too little, could be released: no need to scan yet
        offset = len(self.context)
        found = [
            f for f in self.scan(self.context + self.pending) if f.end > offset
        ]  # findings ending in the released context were acted on before
        cut = len(self.pending) if final else max(0, len(self.pending) - self.holdback)
        for f in found:
            if f.start - offset < cut < f.end - offset:
                cut = max(0, f.start - offset)
        self._holding_start = False
        if not final and self.starts is not None:
            covered = [(f.start - offset, f.end - offset) for f in found]
            held = self.starts.hold_before(self.pending, cut, covered, partial=self.holdback > 0)
            self._holding_start, cut = held < cut, held
        acted = [f for f in found if f.end - offset <= cut]
        released = redact_with_markers(self.pending[:cut], acted, offset)
        self.findings += acted
        self.context = (self.context + self.pending[:cut])[-CONTEXT_CHARS:]
        self.pending = self.pending[cut:]
        # Held text (the hold-back, or a secret still arriving) is scanned again
        # once a step more has come, not at every chunk.
        held = max(self.holdback, len(self.pending))
        self._due = held + RELEASE_STEP if held else 0
        return released


def redact_with_markers(text: str, findings: list[Finding], offset: int = 0) -> str:
    """Replace the REDACT (and BLOCK) spans with the specification's markers.

    Findings are offset by ``offset`` from ``text`` (they may start before it).
    """
    pieces: list[str] = []
    last = 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.action is Action.ALERT:
            continue
        start, end = max(f.start - offset, last), f.end - offset
        if start >= end:
            continue
        pieces += [text[last:start], replace_marker(f.label)]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
