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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llm_gateway.dlp.engine import RuleEngine
from llm_gateway.dlp.errors import DetectorUnavailable
from llm_gateway.dlp.findings import Action, Finding, Severity
from llm_gateway.dlp.ner import NerConfig, NerDetector
from llm_gateway.dlp.operators import Anonymizer
from llm_gateway.dlp.vault import InProcessVault, Vault
from llm_gateway.dlp.vault_crypto import derive_key, resolve_vault_key
from llm_gateway.errors import DlpUnavailable
from llm_gateway.settings import Settings

log = logging.getLogger(__name__)

# Up to this many characters the rules run on the event loop (a 32 KB prompt takes
# about a millisecond); larger texts go to a thread, so that a 2 MiB body does not
# hold up every other request while it is scanned.
OFF_LOOP_CHARS = 32_768


@dataclass(slots=True)
class DlpService:
    engine: RuleEngine
    ner: NerDetector | None
    anonymizer: Anonymizer
    vault: Vault
    fail_open: bool  # DLP_ON_ERROR=alert: a failed detector is logged, the request passes
    scan_responses: bool
    stream_holdback: int

    @classmethod
    async def start(cls, settings: Settings) -> DlpService:
        """Load rules (a bad rule stops start-up), start NER when wanted, open the vault."""
        engine = load_rule_engine(settings)
        ner = None
        if settings.dlp_ner != "off" and settings.dlp_enable_pii:
            ner = await NerDetector.start(
                NerConfig(
                    workers=settings.dlp_ner_workers,
                    max_chars=settings.dlp_ner_max_chars,
                    timeout_s=settings.dlp_ner_timeout_ms / 1000,
                )
            )
            if not ner.available and settings.dlp_ner == "on":
                raise RuntimeError(f"DLP_NER=on, but the NER detector is unavailable: {ner.reason}")
        key = resolve_vault_key(settings.dlp_vault_key, settings.data_dir)
        vault: Vault
        if settings.dlp_vault == "redis":
            from llm_gateway.dlp.vault_redis import RedisVault

            vault = RedisVault.from_url(settings.redis_dsn, key, ttl=settings.dlp_vault_ttl)
        else:
            vault = InProcessVault(key, ttl=settings.dlp_vault_ttl)
        anonymizer = Anonymizer(
            settings.dlp_operator,
            hmac_key=derive_key(key, "dlp-operators"),
            overrides=dict(settings.dlp_operator_overrides),
        )
        log.info(
            "DLP: %d rules (%s), default action %s, NER %s",
            len(engine.rules), settings.dlp_backend, engine.default_action.value,
            "on" if ner is not None and ner.available else "off",
        )  # fmt: skip
        return cls(
            engine=engine,
            ner=ner,
            anonymizer=anonymizer,
            vault=vault,
            fail_open=settings.dlp_on_error == "alert",
            scan_responses=settings.dlp_scan_responses,
            stream_holdback=settings.dlp_stream_holdback,
        )

    @property
    def ner_status(self) -> str:
        if self.ner is None:
            return "off"
        return "available" if self.ner.available else f"unavailable: {self.ner.reason}"

    def scan_rules(self, text: str, mode: Action | None = None) -> list[Finding]:
        """The rule engine's findings; ``mode`` (a policy's dlp_mode) replaces the default."""
        return self.engine.scan(text, mode)

    async def scan_all(
        self, texts: Sequence[str], *, mode: Action | None = None, ner: bool = True
    ) -> list[list[Finding]]:
        """Findings per text: rules on every text, NER on the texts it can take.

        Raises :class:`DlpUnavailable` when a detector fails (fail closed), or
        logs it and goes on with the rules' findings when alert-only.
        """
        if sum(len(t) for t in texts) <= OFF_LOOP_CHARS:
            results = [self.scan_rules(text, mode) for text in texts]
        else:  # a large body: let the event loop serve others meanwhile
            results = await asyncio.to_thread(lambda: [self.scan_rules(t, mode) for t in texts])
        detector = self.ner
        if not ner or detector is None or not detector.available:
            return results
        if sum(len(t) for t in texts) > detector.config.max_chars:
            return results  # the size cap decides whether NER runs: larger texts get rules only
        action = mode or self.engine.default_action
        try:
            # One budget for the whole request, not one per text.
            async with asyncio.timeout(detector.config.timeout_s):
                for i, text in enumerate(texts):
                    found = await detector.scan(text, action=action, severity=Severity.MEDIUM)
                    if found:
                        results[i] = _merge(results[i], found)
        except TimeoutError:
            return self._unavailable("ner", "the scan overran DLP_NER_TIMEOUT_MS", results)
        except DetectorUnavailable as exc:
            return self._unavailable("ner", str(exc), results)
        return results

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


def load_rule_engine(settings: Settings) -> RuleEngine:
    """The built-in rules and the deployment's; a bad rule raises ConfigError naming it."""
    return RuleEngine.load(
        rules_file(settings),
        enable_secrets=settings.dlp_enable_secrets,
        enable_pii=settings.dlp_enable_pii,
        default_action=Action(settings.dlp_mode),
        backend=settings.dlp_backend,
    )


def rules_file(settings: Settings) -> Path | None:
    if settings.dlp_rules_file is not None:
        return settings.dlp_rules_file
    default = settings.config_dir / "dlp_rules.yaml"
    return default if default.is_file() else None


def _merge(rules: list[Finding], ner: list[Finding]) -> list[Finding]:
    """NER findings where no rule already found something: rules are validated, so they win."""
    kept = [f for f in ner if not any(r.start < f.end and f.start < r.end for r in rules)]
    return sorted(rules + kept, key=lambda f: f.start)
