"""Anonymisation operators: what a redacted span becomes before the text leaves.

One operator per deployment (``DLP_OPERATOR``), overridable per rule, label or entity:

=============  ==========================================  =========================
``replace``    the specification's ``<SSN_REDACTED>``      irreversible, no state
``token``      ``<PERSON_1>``, ``<SSN_2>``...              reversible through the vault
``mask``       ``****-****-****-1111``                     keeps the last characters
``hash``       ``<SSN_HASH_3f9a0c1b7d2e>``                 keyed HMAC-SHA256, stable
``synthetic``  a realistic fake (Faker, format-preserving)  see :mod:`.synthetic`
=============  ==========================================  =========================

``hash`` renders the first ``hash_length`` hex digits (default 12, i.e. 48
bits) of HMAC-SHA256 under the deployment's key over label and value: enough
to tell values apart in a conversation or a report, never a bare hash that a
dictionary of all 10^9 SSNs would reverse.

``token`` needs a :class:`~llm_gateway.dlp.vault.VaultSession`; without one (no
conversation) or when the vault fails, the span gets the ``replace`` marker
instead: the value still never leaves, only the answer cannot be restored.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence

from llm_gateway.dlp.findings import Action, Finding, Operator
from llm_gateway.dlp.synthetic import SyntheticValues
from llm_gateway.dlp.vault import VaultError, VaultSession, token_label
from llm_gateway.dlp.vault_crypto import derive_key

logger = logging.getLogger(__name__)

MIN_KEY_BYTES = 32


def parse_operator(name: str, *, where: str = "DLP_OPERATOR") -> Operator:
    """The operator called ``name``; a ``ValueError`` naming ``where`` and the choices if none."""
    try:
        return Operator(name.strip().lower())
    except ValueError:
        choices = ", ".join(op.value for op in Operator)
        raise ValueError(f"{where}: unknown operator {name!r}; expected one of {choices}") from None


def replace_marker(label: str) -> str:
    return f"<{token_label(label)}_REDACTED>"


def mask(value: str, *, keep: int = 4, char: str = "*") -> str:
    """Letters and digits become ``char`` except the last ``keep``; separators stay.

    At most half of the letters and digits are ever kept, so a short value
    (a 3-letter name, a 4-digit PIN) is never shown whole.
    """
    alnum = sum(ch.isalnum() for ch in value)
    shown = min(keep, alnum // 2)
    hidden = alnum - shown
    out: list[str] = []
    for ch in value:
        if ch.isalnum():
            out.append(char if hidden > 0 else ch)
            hidden -= 1
        else:
            out.append(ch)
    return "".join(out)


class Anonymizer:
    """Applies the configured operators to the REDACT findings of a text.

    Built once per deployment; :meth:`apply` does lookups and string building
    only (plus one vault round trip when tokens are involved).
    """

    def __init__(
        self,
        operator: str = "replace",
        *,
        hmac_key: bytes,
        overrides: Mapping[str, str] | None = None,
        mask_keep: int = 4,
        mask_char: str = "*",
        hash_length: int = 12,
        locale: str = "en_US",
    ) -> None:
        """``overrides`` maps a finding's rule name (``credit_card``), label (``SSN``)
        or entity (``US_SSN``) to an operator name, looked up in that order: a rule's
        own ``operator`` in ``dlp_rules.yaml`` can be passed in by its name.

        ``hmac_key`` (at least 32 bytes) keys ``hash`` and seeds ``synthetic``;
        keep it stable, or hashes and fakes change with it.
        """
        if len(hmac_key) < MIN_KEY_BYTES:
            raise ValueError(f"the anonymiser's HMAC key must be at least {MIN_KEY_BYTES} bytes")
        if len(mask_char) != 1:
            raise ValueError("mask_char must be a single character")
        if not 8 <= hash_length <= 64:
            raise ValueError("hash_length must be between 8 and 64 hex digits")
        if mask_keep < 0:
            raise ValueError("mask_keep must not be negative")
        self.default = parse_operator(operator)
        self.overrides = {
            name: parse_operator(op, where=f"operator override for {name}")
            for name, op in (overrides or {}).items()
        }
        self.mask_keep = mask_keep
        self.mask_char = mask_char
        self.hash_length = hash_length
        self._hash_base = hmac.new(derive_key(hmac_key, "dlp-hash-operator"), digestmod="sha256")
        self._synthetic = SyntheticValues(derive_key(hmac_key, "dlp-synthetic"), locale=locale)
        # Whether any finding may become a token, i.e. whether a vault session is worth opening.
        self.uses_vault = Operator.TOKEN in (self.default, *self.overrides.values())

    def operator_for(self, finding: Finding) -> Operator:
        overrides = self.overrides
        if overrides:
            chosen = (
                overrides.get(finding.rule)
                or overrides.get(finding.label)
                or overrides.get(finding.entity)
            )
            if chosen is not None:
                return chosen
        return self.default

    async def apply(
        self, text: str, findings: Sequence[Finding], session: VaultSession | None = None
    ) -> str:
        """``text`` with every REDACT finding replaced; other findings are left as they are.

        Findings are expected sorted by start and not overlapping; overlapping
        ones are merged into one span (named after the first), so no part of
        either leaks. Linear in the text and the (sorted) findings.
        """
        return (await self.apply_many([(text, findings)], session))[0]

    async def apply_many(
        self,
        items: Sequence[tuple[str, Sequence[Finding]]],
        session: VaultSession | None = None,
    ) -> list[str]:
        """:meth:`apply` for every text of a request (system prompt, messages, tool
        arguments...) with a single vault round trip for all their tokens."""
        plans: list[tuple[list[tuple[int, int, Finding]], list[str]]] = []
        slots: list[tuple[int, int]] = []  # (text, span) awaiting a token
        values: list[tuple[str, str]] = []
        for t, (text, findings) in enumerate(items):
            spans = _redact_spans(findings, len(text))
            rendered: list[str] = []
            for i, (start, end, finding) in enumerate(spans):
                op = self.operator_for(finding)
                if op is Operator.TOKEN and session is not None:
                    slots.append((t, i))
                    values.append((finding.label, text[start:end]))
                    rendered.append("")
                else:
                    rendered.append(self._render(op, finding, text[start:end]))
            plans.append((spans, rendered))
        if values and session is not None:
            tokens = await self._tokens(values, session)
            for (t, i), token in zip(slots, tokens, strict=True):
                plans[t][1][i] = token
        return [_splice(text, *plan) for (text, _), plan in zip(items, plans, strict=True)]

    def _render(self, op: Operator, finding: Finding, value: str) -> str:
        if op is Operator.MASK:
            return mask(value, keep=self.mask_keep, char=self.mask_char)
        if op is Operator.HASH:
            label = token_label(finding.label)
            mac = self._hash_base.copy()  # cheaper than rekeying for every span
            mac.update(label.encode() + b"\x00" + value.encode())
            return f"<{label}_HASH_{mac.hexdigest()[: self.hash_length]}>"
        if op is Operator.SYNTHETIC:
            fake = self._synthetic.fake(finding.entity, finding.label, value)
            if fake is not None:
                return fake
        return replace_marker(finding.label)

    async def _tokens(self, values: list[tuple[str, str]], session: VaultSession) -> list[str]:
        try:
            return await session.tokens_for(values)
        except VaultError as exc:
            logger.warning(
                "dlp vault unavailable (%s); %d span(s) redacted without a token",
                type(exc).__name__,
                len(values),
            )
            return [replace_marker(label) for label, _ in values]


def _splice(text: str, spans: Sequence[tuple[int, int, Finding]], rendered: Sequence[str]) -> str:
    """``text`` with each span replaced by its rendering, built from pieces in one pass."""
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for (start, end, _), replacement in zip(spans, rendered, strict=True):
        pieces += (text[cursor:start], replacement)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _start(finding: Finding) -> int:
    return finding.start


def _redact_spans(findings: Sequence[Finding], length: int) -> list[tuple[int, int, Finding]]:
    """The REDACT findings as ``(start, end, finding)``, clamped to the text, overlaps merged."""
    spans: list[tuple[int, int, Finding]] = []
    # Sorted already by contract; sorting again is linear then, and an unsorted list
    # must never make a span look "covered" by an earlier one and leak.
    for finding in sorted(findings, key=_start):
        if finding.action != Action.REDACT:
            continue
        start, end = max(0, finding.start), min(length, finding.end)
        if start >= end:
            continue
        if spans and start < spans[-1][1]:
            prev_start, prev_end, prev = spans[-1]
            spans[-1] = (prev_start, max(prev_end, end), prev)
        else:
            spans.append((start, end, finding))
    return spans
