"""Failures of a DLP detector, as distinct from findings.

A detector that cannot give an answer (its model is not installed, its worker
died, its time budget ran out) raises :class:`DetectorUnavailable`; it never
returns an empty list instead, because "nothing found" and "not scanned" must
not look alike. The pipeline maps it to the fail-closed ``dlp_unavailable``
block, or to an alert where the deployment configures alert-only.

    DetectorUnavailable
    └── DetectorTimeout     the scan ran past its time budget
"""

from __future__ import annotations


class DetectorUnavailable(Exception):
    """A detector could not scan the text; ``detector`` names it (``"ner"``)."""

    def __init__(self, detector: str, reason: str) -> None:
        super().__init__(f"{detector}: {reason}")
        self.detector = detector
        self.reason = reason


class DetectorTimeout(DetectorUnavailable):
    """The scan did not finish within its time budget."""
