"""The detectors that ship with the gateway, as YAML rule files in this package.

``pii.yaml`` holds personal data (cards, SSNs, e-mail, phones, IPs, IBANs...)
and ``secrets.yaml`` credentials (cloud keys, tokens, private keys, passwords
in URLs and assignments). They are ordinary rule files, loaded by the same
code as a user's, so everything a user can write a built-in can use, and the
reverse. Built-in rule names carry a ``pii.`` or ``secret.`` prefix so they
never collide with a user's.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
PII_FILE = HERE / "pii.yaml"
SECRETS_FILE = HERE / "secrets.yaml"


def builtin_rule_files(*, enable_secrets: bool, enable_pii: bool) -> list[Path]:
    """The built-in files to load, by family (``DLP_ENABLE_PII``, ``DLP_ENABLE_SECRETS``)."""
    files = []
    if enable_pii:
        files.append(PII_FILE)
    if enable_secrets:
        files.append(SECRETS_FILE)
    return files
