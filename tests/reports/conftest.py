"""Fixtures of the reports' tests: the e2e suite's emulator, as a fixture here too."""

from __future__ import annotations

from tests.e2e.conftest import emulator

__all__ = ["emulator"]
