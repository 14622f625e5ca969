"""Multi-pattern prefilters: one pass over the text says which patterns can match.

The engine never asks a backend for spans. A backend answers "which of these
patterns match somewhere in this UTF-8 text" in one linear pass; the engine
then runs only those rules' own RE2 patterns for spans. Because spans always
come from RE2, every backend yields identical findings as long as it never
misses a pattern that matches; reporting one that does not only costs time.

``re2``
    an ``RE2::Set`` over every pattern (the default; always installed).
``hyperscan``
    a Hyperscan/Vectorscan database in single-match mode (optional extra).
    Hyperscan's syntax is not RE2's: a pattern it rejects is retried in
    Hyperscan's prefilter mode (a superset), and one it still rejects, or that
    contains non-ASCII characters (where case folding could differ), is
    reported as matching on every scan, so RE2 decides.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import re2

from llm_gateway.dlp.regex import options
from llm_gateway.settings.dlp import DlpBackend

if TYPE_CHECKING:
    import hyperscan

BACKENDS = tuple(b.value for b in DlpBackend)  # DLP_BACKEND's choices are these


class BackendError(ValueError):
    """An unknown backend, one that is not installed, or patterns it cannot build."""


class Prefilter(Protocol):
    def matching(self, data: bytes) -> list[int]:
        """Indexes of the patterns that match somewhere in ``data`` (any order, no repeats)."""
        ...


def make_prefilter(backend: str, patterns: Sequence[str]) -> Prefilter:
    if backend == "re2":
        return Re2SetPrefilter(patterns)
    if backend == "hyperscan":
        return HyperscanPrefilter(patterns)
    raise BackendError(f"unknown DLP backend {backend!r}; expected one of {', '.join(BACKENDS)}")


class Re2SetPrefilter:
    """``RE2::Set``: one DFA over all patterns.

    A Set reports no matches when its DFA runs out of memory, which would be
    silent failure; RE2 only bails out for sets when even a fresh cache cannot
    hold one state, and ``options()`` gives the DFA tens of megabytes, far
    above what our patterns need. The engine's tests scan adversarial text to
    keep that promise honest.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        opts = options()
        opts.never_capture = True
        self._set = re2.Set.SearchSet(opts)
        for index, pattern in enumerate(patterns):
            try:
                added = self._set.Add(pattern)
            except re2.error as exc:
                raise BackendError(f"pattern #{index} rejected by RE2::Set: {exc}") from None
            if added != index:
                raise BackendError(f"RE2::Set numbered pattern #{index} as {added}")
        try:
            self._set.Compile()
        except re2.error as exc:
            raise BackendError(f"RE2::Set failed to compile: {exc}") from None

    def matching(self, data: bytes) -> list[int]:
        found: list[int] | None = self._set.Match(data)
        return found or []


class HyperscanPrefilter:
    """Hyperscan block-mode database, one scratch space per thread."""

    def __init__(self, patterns: Sequence[str]) -> None:
        try:
            import hyperscan
        except ImportError:
            raise BackendError(
                "DLP backend 'hyperscan' needs the hyperscan package: "
                "pip install 'llm-gateway[hyperscan]' (or choose backend 're2')"
            ) from None
        self._hs = hyperscan
        base = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8
        ascii_ids = [i for i, pattern in enumerate(patterns) if pattern.isascii()]
        self._always = [i for i, pattern in enumerate(patterns) if not pattern.isascii()]
        flags = {i: base for i in ascii_ids}
        try:
            database = self._build(patterns, flags)
        except hyperscan.error:
            # Find the patterns Hyperscan cannot take as they are (rare, so one by one).
            for i in ascii_ids:
                usable = self._usable_flags(patterns[i], base)
                if usable is None:
                    self._always.append(i)
                    del flags[i]
                else:
                    flags[i] = usable
            database = self._build(patterns, flags)
        self._database = database
        self._scratch = hyperscan.Scratch(database) if database is not None else None
        self._local = threading.local()

    def _build(self, patterns: Sequence[str], flags: dict[int, int]) -> hyperscan.Database | None:
        if not flags:
            return None
        ids = sorted(flags)
        database = self._hs.Database(mode=self._hs.HS_MODE_BLOCK)
        database.compile(
            expressions=[patterns[i].encode("utf-8") for i in ids],
            ids=ids,
            elements=len(ids),
            flags=[flags[i] for i in ids],
        )
        return database

    def _usable_flags(self, pattern: str, base: int) -> int | None:
        """Flags under which Hyperscan accepts ``pattern`` alone, or None to always report it."""
        for flag in (base, base | self._hs.HS_FLAG_PREFILTER):
            try:
                self._hs.Database(mode=self._hs.HS_MODE_BLOCK).compile(
                    expressions=[pattern.encode("utf-8")], ids=[0], elements=1, flags=[flag]
                )
            except self._hs.error:
                continue
            return flag
        return None

    def matching(self, data: bytes) -> list[int]:
        found = set(self._always)
        if self._database is None or self._scratch is None:
            return list(found)
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._scratch.clone()
            self._local.scratch = scratch

        def on_match(pattern_id: int, start: int, end: int, flags: int, context: object) -> None:
            found.add(pattern_id)

        self._database.scan(data, match_event_handler=on_match, scratch=scratch)
        return list(found)
