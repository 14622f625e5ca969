"""The DLP parts a running gateway holds, built from settings at start-up.

Detection is the rule engine (every text, on the event loop: a 2 KB prompt
costs a fraction of a millisecond) plus, where installed and allowed, the NER
detector for names and places (in worker processes, never on the loop).
A detector that fails or overruns its budget raises :class:`DlpUnavailable`
unless the deployment chose alert-only (``DLP_ON_ERROR=alert``).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.errors import DetectorUnavailable
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.ner import NerConfig, NerDetector, NerStatus
from llm_gateway.dlp.ner_pool import NerBusy
from llm_gateway.dlp.operators import Anonymizer
from llm_gateway.dlp.prefixes import SecretStarts
from llm_gateway.dlp.resolve import Candidate, resolve_overlaps
from llm_gateway.dlp.vault import Vault
from llm_gateway.dlp.vault_crypto import derive_key, resolve_vault_key
from llm_gateway.errors import DlpUnavailable, RateLimited
from llm_gateway.settings import AutoOnOff, DlpSettings, StateSettings
from llm_gateway.state import Store, open_store

log = logging.getLogger(__name__)

# Between the texts of one scan: a control character on a line of its own, which
# a rule's value does not run across (an armoured key's may: it is cut in parts).
SEPARATOR = "\n\x1f\n"
# Up to this many characters the rules run on the event loop (a 32 KB prompt takes
# about a millisecond); larger texts go to a thread, so that a 2 MiB body does not
# hold up every other request while it is scanned.
OFF_LOOP_CHARS = 32_768
# How far from each end of a text a value split over two texts is looked for.
SEAM_CHARS = 256


NER_OFF = NerStatus("off")


@dataclass(frozen=True, slots=True)
class DlpScan:
    """Findings per text, and how much of the texts NER read (``ner``)."""

    findings: list[list[Finding]]
    ner: NerStatus


@dataclass(slots=True)
class DlpService:
    engine: RuleEngine
    ner: NerDetector | None
    anonymizer: Anonymizer
    vault: Vault
    fail_open: bool  # DLP_ON_ERROR=alert: a failed detector is logged, the request passes
    scan_responses: bool
    stream_holdback: int
    secret_starts: SecretStarts

    @classmethod
    async def start(
        cls, settings: DlpSettings, state: StateSettings, store: Store | None = None
    ) -> DlpService:
        """Load rules (a bad rule stops start-up), start NER when wanted, open the vault.

        The vault lives in ``store``, the gateway's shared state store (its owner
        closes it), under a namespace of its own, when ``DLP_VAULT`` names the
        store's backend; otherwise (or with no store) it opens a store of its own
        from ``DLP_VAULT`` (memory, or Redis at ``REDIS_*``) and closes it in
        :meth:`aclose`. So ``DLP_VAULT=redis`` keeps working on a gateway whose
        other state is in memory.
        """
        engine = load_rule_engine(settings)
        ner = None
        if settings.ner is not AutoOnOff.OFF and settings.enable_pii:
            ner = await NerDetector.start(
                NerConfig(
                    workers=settings.ner_workers,
                    max_chars=settings.ner_max_chars,
                    timeout_s=settings.ner_timeout_ms / 1000,
                    timeout_per_kchar_s=settings.ner_timeout_per_kchar_ms / 1000,
                    max_timeout_s=settings.ner_timeout_max_ms / 1000,
                    all_caps=settings.ner_all_caps,
                    caller_chars=settings.ner_caller_chars,
                )
            )
            if not ner.available and settings.ner is AutoOnOff.ON:
                raise RuntimeError(f"DLP_NER=on, but the NER detector is unavailable: {ner.reason}")
        key = resolve_vault_key(settings.vault_key, settings.data_dir)
        vault = _open_vault(settings, state, key, store)
        anonymizer = Anonymizer(
            settings.operator,
            hmac_key=derive_key(key, "dlp-operators"),
            overrides=dict(settings.operator_overrides),
        )
        log.info(
            "DLP: %d rules (%s), default action %s, NER %s",
            len(engine.rules), settings.backend.value, engine.default_action.value,
            "on" if ner is not None and ner.available else "off",
        )  # fmt: skip
        return cls(
            engine=engine,
            ner=ner,
            anonymizer=anonymizer,
            vault=vault,
            fail_open=settings.on_error is Action.ALERT,
            scan_responses=settings.scan_responses,
            stream_holdback=settings.stream_holdback,
            secret_starts=secret_starts(engine, settings.stream_holdback_max),
        )

    @property
    def ner_status(self) -> str:
        if self.ner is None:
            return "off"
        return "available" if self.ner.available else f"unavailable: {self.ner.reason}"

    def scan_rules(self, text: str, mode: Action | None = None) -> list[Finding]:
        """The rule engine's findings; ``mode`` (a policy's dlp_mode) replaces the default."""
        return self.engine.scan(text, mode)

    def scan_rules_many(
        self, texts: Sequence[str], mode: Action | None = None
    ) -> list[list[Finding]]:
        """The rules' findings per text, from one scan of the texts joined.

        A request's strings are many and mostly short (tool names, schema
        descriptions, stop sequences): one scan of them all costs little more
        than one of them alone. The separator is one no pattern reads across;
        a finding that did span two texts anyway is cut into a part for each.
        Then the seams: a value split over two consecutive texts (half a token
        in one message, half in the next) is looked for by :func:`seams`.
        """
        if len(texts) == 1:
            return [self.engine.scan(texts[0], mode)]
        results = _split(self.engine.scan(SEPARATOR.join(texts), mode), texts, len(SEPARATOR))
        extra: dict[int, list[Finding]] = {}
        for i, left, right in seams(self.engine, texts, mode):
            # A value already found whole on either side (an address at the end of one
            # text, a word at the start of the next) is not a split value.
            if _found_in(results[i], left) or _found_in(results[i + 1], right):
                continue
            extra.setdefault(i, []).append(left)
            extra.setdefault(i + 1, []).append(right)
        for i, parts in extra.items():
            results[i] = _merge(results[i], parts)
        return results

    async def scan_all(
        self,
        texts: Sequence[str],
        *,
        mode: Action | None = None,
        ner: bool = True,
        prose: Sequence[bool] | None = None,
        caller: tuple[str, str] = ("", ""),
    ) -> list[list[Finding]]:
        """The findings of :meth:`scan`, without its account of NER."""
        scan = await self.scan(texts, mode=mode, ner=ner, prose=prose, caller=caller)
        return scan.findings

    async def scan(
        self,
        texts: Sequence[str],
        *,
        mode: Action | None = None,
        ner: bool = True,
        prose: Sequence[bool] | None = None,
        caller: tuple[str, str] = ("", ""),
    ) -> DlpScan:
        """Findings per text: rules on every text, NER on the texts it can take.

        ``prose`` says which texts are natural language (default: all): NER,
        which finds names, runs only on those, not on tool names or schemas.
        ``caller`` (tenant, caller) is whose turn in NER's fair queue this is.
        NER reads what its size cap and time budget allow and the result's
        ``ner`` says how much that was (``partial (time budget)``...); whether
        that may pass is the caller's to decide (:func:`require_complete`).
        Raises :class:`DlpUnavailable` when a detector fails (fail closed), or
        logs it and goes on with the rules' findings when alert-only, and
        :class:`RateLimited` when the caller has too much NER work waiting.
        """
        total = sum(len(t) for t in texts)
        if total <= OFF_LOOP_CHARS:
            results = self.scan_rules_many(texts, mode)
        else:  # a large body: let the event loop serve others meanwhile
            results = await asyncio.to_thread(self.scan_rules_many, texts, mode)
        detector = self.ner
        if not ner or detector is None:
            return DlpScan(results, NER_OFF)
        wanted = [i for i in range(len(texts)) if prose is None or prose[i]]
        chars = sum(len(texts[i]) for i in wanted)
        if not detector.available:
            status = NerStatus.of(0, chars, [unavailable_reason(detector.reason)])
            return DlpScan(results, status)
        action = mode or self.engine.default_action
        try:  # one budget for the whole request, not one per text
            scanned = await detector.scan_budgeted(
                [texts[i] for i in wanted], action=action, severity=Severity.MEDIUM, caller=caller
            )
        except NerBusy:
            raise RateLimited(
                "too much of this caller's text is waiting for name detection; retry shortly",
                code="dlp_busy",
                retry_after=1,
            ) from None
        except DetectorUnavailable as exc:
            passed = self._unavailable("ner", str(exc), results)
            return DlpScan(passed, NerStatus.of(0, chars, ["detector error"]))
        for i, names in zip(wanted, scanned.findings, strict=True):
            if names:
                results[i] = _merge(results[i], names)
        return DlpScan(results, scanned.status)

    def _unavailable(
        self, detector: str, reason: str, results: list[list[Finding]]
    ) -> list[list[Finding]]:
        if not self.fail_open:
            raise DlpUnavailable(
                "the request was blocked because sensitive-data detection is unavailable"
            )
        log.warning(
            "DLP detector %s unavailable; passing (DLP_ON_ERROR=alert): %s", detector, reason
        )
        return results

    async def aclose(self) -> None:
        if self.ner is not None:
            await self.ner.aclose()
        await self.vault.aclose()


def unavailable_reason(reason: str | None) -> str:
    """A detector's reason for being unavailable, in the few words a status shows."""
    text = reason or ""
    if "spaCy model package" in text:
        return "model not installed"
    if "is not installed" in text:
        return "extra not installed"
    return "unavailable"


def require_complete(status: NerStatus) -> None:
    """Refuse (:class:`DlpUnavailable`) what NER could not read in full: the policy's
    ``ner_partial: block``."""
    if not status.complete:
        raise DlpUnavailable(
            f"the request was blocked because names were not looked for in all of it "
            f"(ner: {status}) and the policy requires a full scan"
        )


def _open_vault(
    settings: DlpSettings, state: StateSettings, key: bytes, store: Store | None
) -> Vault:
    if store is not None and settings.vault is state.backend:
        return Vault(store, key, ttl=settings.vault_ttl)
    own = open_store(settings.vault, state.redis_dsn)
    return Vault(own, key, ttl=settings.vault_ttl, owns_store=True)


def load_rule_engine(settings: DlpSettings) -> RuleEngine:
    """The built-in rules and the deployment's; a bad rule raises ConfigError naming it."""
    return RuleEngine.load(
        rules_file(settings),
        enable_secrets=settings.enable_secrets,
        enable_pii=settings.enable_pii,
        default_action=settings.mode,
        backend=settings.backend,
        phone_regions=settings.phone_regions,
    )


def secret_starts(engine: RuleEngine, cap: int) -> SecretStarts:
    """The starts a stream holds back at: of secrets, and of the deployment's own rules
    (an alert-only rule changes nothing in the text, so it holds nothing back)."""
    return SecretStarts(
        (
            rule.pattern.source
            for rule in engine.rules
            if rule.category == "secret" or (not rule.builtin and rule.action is not Action.ALERT)
        ),
        cap=cap,
    )


def rules_file(settings: DlpSettings) -> Path | None:
    if settings.rules_file is not None:
        return settings.rules_file
    default = settings.config_dir / "dlp_rules.yaml"
    return default if default.is_file() else None


def _split(found: list[Finding], texts: Sequence[str], gap: int) -> list[list[Finding]]:
    """Findings in ``texts`` joined with ``gap`` characters between them, per text; one
    that runs over a boundary is cut into a part for each text it touches."""
    starts: list[int] = []
    at = 0
    for text in texts:
        starts.append(at)
        at += len(text) + gap
    results: list[list[Finding]] = [[] for _ in texts]
    for f in found:
        i = max(0, bisect_right(starts, f.start) - 1)
        while i < len(texts) and starts[i] < f.end:
            start, end = max(f.start - starts[i], 0), min(f.end - starts[i], len(texts[i]))
            if start < end:
                results[i].append(
                    f if (start, end) == (f.start, f.end) else replace(f, start=start, end=end)
                )
            i += 1
    return results


def seams(
    engine: RuleEngine, texts: Sequence[str], mode: Action | None
) -> list[tuple[int, Finding, Finding]]:
    """Findings that run across the boundary of two consecutive texts: ``(i, the part at
    the end of text i, the part at the start of text i + 1)``.

    Each message is otherwise scanned apart from its neighbours, so a token,
    a card or an SSN split over two messages would pass. The last
    ``SEAM_CHARS`` characters of each text are joined to the first of the
    next, all seams in one scan (separated as usual); only findings that
    cross a join are kept, each cut into its two parts, so both messages are
    acted on. The work is bounded by ``2 * SEAM_CHARS`` per boundary.
    """
    windows: list[str] = []
    joins: list[tuple[int, int, int]] = []  # (left text, window start, join offset in window)
    at = 0
    for i in range(len(texts) - 1):
        left, right = texts[i][-SEAM_CHARS:], texts[i + 1][:SEAM_CHARS]
        if not left or not right:
            continue
        windows.append(left + right)
        joins.append((i, at, len(left)))
        at += len(left) + len(right) + len(SEPARATOR)
    if not windows:
        return []
    found: list[tuple[int, Finding, Finding]] = []
    window_starts = [start for _, start, _ in joins]
    for f in engine.scan(SEPARATOR.join(windows), mode):
        i, start, join = joins[bisect_right(window_starts, f.start) - 1]
        split = start + join
        if not f.start < split < f.end:
            continue
        offset = len(texts[i]) - join  # where the window's left part starts in text i
        left_part = replace(f, start=f.start - start + offset, end=len(texts[i]))
        found.append((i, left_part, replace(f, start=0, end=f.end - split)))
    return found


def _found_in(findings: list[Finding], part: Finding) -> bool:
    """Whether a finding of ``part``'s entity already overlaps it."""
    return any(
        f.entity == part.entity and f.start < part.end and f.end > part.start for f in findings
    )


def _merge(rules: list[Finding], ner: list[Finding]) -> list[Finding]:
    """The rules' and NER's findings settled together, as the rules' among themselves are
    (:mod:`llm_gateway.dlp.resolve`): the stricter action applies and redaction covers
    the union; at equal strictness and score the rules, listed first, speak."""
    every = rules + ner
    candidates = [
        Candidate(f.start, f.end, f.score, f.action, f.severity, builtin=True, order=i)
        for i, f in enumerate(every)
    ]
    return [replace(every[c.order], start=c.start, end=c.end) for c in resolve_overlaps(candidates)]
