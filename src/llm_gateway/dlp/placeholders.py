"""Values shaped like a secret that only stand for one: documentation, templates, masks.

A prompt that pastes a provider's documentation carries ``ghp_xxxx...``,
``AKIAIOSFODNN7EXAMPLE``, ``hf_xxxx...``, ``sk-...<your-key>`` or an empty
private-key block. Blocking those refuses harmless requests; dropping them
hides what a team may want to see. So the engine keeps a secret rule's match
that stands in for a value, but as an alert of low severity: it is reported,
never blocked, never redacted.

A value is a stand-in when any of these holds:

* it names itself one: ``example``, ``sample``, ``dummy``, ``placeholder``,
  ``redacted``, ``changeme``, ``your_key``/``your-token``/``your_password``...;
* it is one of the passwords tutorials show (``P@ssw0rd``, ``password123``,
  ``hunter2``: ``TUTORIAL_PASSWORDS``), the whole value;
* it carries template or elision syntax: ``${X}``, ``$NAME``, ``<your-key>``,
  ``{{token}}``, ``{name}``, ``...``;
* it has ``RUN`` or more of one masking character in a row (``x``, ``X``,
  ``*``, ``#``, ``.``, ``0``, ``1``, ``-``, ``_``);
* it has ``SEQUENCE`` or more consecutive characters in alphabet order
  (``123456``, ``abcdef``);
* it is at least ``LOW_ENTROPY_MIN_LENGTH`` long with fewer than
  ``LOW_ENTROPY_BITS`` bits of entropy per character (``abababab...``);
* it is an armoured key whose body has fewer than ``MIN_KEY_BODY`` base64
  characters (an empty or elided block).

Each test is chosen so that a real token fails it with negligible
probability: six equal characters in a row occur in a random 40-character
token over 16 symbols about once in 20,000 tokens, over 62 symbols about once
in 25 million, and the other tests are rarer still. The masking set leaves
out ``A`` on purpose: base64 of zero bytes is ``AAAA...``, which real OpenSSH
keys and Twitter bearer tokens are full of.

Work is bounded: only the first ``SAMPLE`` characters of a value are read.
"""

from __future__ import annotations

import re

from llm_gateway.dlp.validators import shannon_entropy

RUN = 6
SEQUENCE = 6
LOW_ENTROPY_MIN_LENGTH = 12
LOW_ENTROPY_BITS = 2.5
MIN_KEY_BODY = 32
SAMPLE = 4096

_NAMED = re.compile(
    r"example|sample|dummy|placeholder|redacted|changeme|replace[_\-]?me|"
    r"your[_\-]?(?:own[_\-]?)?(?:api[_\-]?|access[_\-]?|secret[_\-]?|db[_\-]?)?"
    r"(?:key|token|secret|password|passwd|pass|pwd|passphrase)",
    re.IGNORECASE,
)
_TEMPLATE = re.compile(r"\$\{|\$[A-Z_]{2,}|<[^<>\s]{1,40}>|\{\{|\{[A-Za-z_]+\}|\.\.\.|\u2026")
_MASK_RUN = re.compile(rf"([xX*#.01_\-])\1{{{RUN - 1},}}")
_ARMOUR_LINE = re.compile(r"-----(?:BEGIN|END) [A-Z0-9 ]+-----|PuTTY-User-Key-File-\d:")
_ESCAPES = re.compile(r"\\[nrt]")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]")


# Compared lower-cased, as written and with @ $ 0 1 3 read as a s o l e.
TUTORIAL_PASSWORDS = frozenset({
    "password", "password1", "password12", "password123", "password1234", "passw0rd",
    "hunter2", "letmein", "qwerty", "qwerty123", "admin", "admin123", "changeit",
    "test123", "abc123", "welcome1", "iloveyou", "secret", "secret123", "supersecret",
    "topsecret", "s3cr3t", "pass123", "pa55word", "root", "toor", "default",
})  # fmt: skip
_LEET = str.maketrans("@$013", "asole")


def is_stand_in(value: str) -> bool:
    """Whether ``value``, matched by a secret rule, only stands for a secret."""
    sample = value[:SAMPLE]
    if len(sample) <= 16:
        lowered = sample.lower()
        if lowered in TUTORIAL_PASSWORDS or lowered.translate(_LEET) in TUTORIAL_PASSWORDS:
            return True
    if _ARMOUR_LINE.search(sample) is not None:
        body = _ESCAPES.sub("", _ARMOUR_LINE.sub("", sample))
        if len(_BASE64.findall(body)) < MIN_KEY_BODY:
            return True
        sample = body
    if _NAMED.search(sample) or _TEMPLATE.search(sample) or _MASK_RUN.search(sample):
        return True
    if _has_sequence(sample):
        return True
    return len(sample) >= LOW_ENTROPY_MIN_LENGTH and shannon_entropy(sample) < LOW_ENTROPY_BITS


def _has_sequence(sample: str) -> bool:
    """``SEQUENCE`` characters in a row, each the next letter or digit after the one before."""
    run = 1
    previous = -2
    for char in sample:
        code = ord(char)
        if code == previous + 1 and char.isalnum() and char.isascii():
            run += 1
            if run >= SEQUENCE:
                return True
        else:
            run = 1
        previous = code
    return False
