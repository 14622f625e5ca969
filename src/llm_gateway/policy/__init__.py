"""Policy as code: every decision is a Rego rule, evaluated in-process or by an OPA server.

:class:`PolicyService` is what the rest of the gateway talks to. It holds the
policy in force (:class:`EmbeddedPolicy` on regorus, or :class:`OpaPolicy`
when ``OPA_URL`` is set) and, for the embedded engine, reloads the policy
files on SIGHUP and when they change. A reload that fails to load keeps the
previous policy in force and logs why.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

from llm_gateway.policy.bundle import PolicyBundle, PolicyLoadError, load_bundle
from llm_gateway.policy.decision import Decision, Obligations, PolicyError, rule_of
from llm_gateway.policy.embedded import EmbeddedPolicy
from llm_gateway.policy.inputs import action_input
from llm_gateway.policy.opa import OpaPolicy
from llm_gateway.settings import PolicySettings
from llm_gateway.transport import Transport

__all__ = [
    "Decision",
    "Obligations",
    "PolicyBundle",
    "PolicyError",
    "PolicyLoadError",
    "PolicyService",
    "action_input",
    "rule_of",
]

log = logging.getLogger(__name__)


class PolicyService:
    def __init__(self, engine: EmbeddedPolicy | OpaPolicy, policy_dir: Path | None) -> None:
        self.engine = engine
        self.policy_dir = policy_dir
        self._fingerprint = _fingerprint(policy_dir) if policy_dir else ()
        self._watcher: asyncio.Task[None] | None = None
        #: Why the last reload was refused (``/ready`` says it); None after a good one.
        self.reload_error: str | None = None

    @classmethod
    def from_settings(
        cls, settings: PolicySettings, transport: Transport | None = None
    ) -> PolicyService:
        """Load the policy; a bad policy raises :class:`PolicyLoadError` (start-up fails).

        ``transport`` is the app's, for the OPA client to send through (the app
        closes it); without one, an OPA client makes and closes its own.
        """
        if settings.opa_url:
            opa = OpaPolicy(
                settings.opa_url,
                settings.opa_policy_path,
                timeout_s=settings.opa_timeout_ms / 1000,
                retries=settings.opa_retries,
                cache_seconds=settings.cache_seconds,
                transport=transport,
            )
            return cls(opa, None)
        rule = rule_of(settings.opa_policy_path)
        bundle = load_bundle(settings.policy_dir, rule)
        embedded = EmbeddedPolicy(bundle, rule, cache_size=settings.decision_cache_size)
        return cls(embedded, settings.policy_dir)

    @property
    def revision(self) -> str:
        return self.engine.revision

    async def decide(self, document: dict[str, Any]) -> Decision:
        return await self.engine.decide(document)

    async def decide_many(self, documents: list[dict[str, Any]]) -> list[Decision]:
        """One decision per document, in order, asked of the policy at once.

        The embedded engine evaluates them in one go; an OPA server gets one
        request for all of them (a listing of N models is not N round trips).
        """
        return await self.engine.decide_many(documents)

    def reload(self) -> bool:
        """Re-read the policy files; on any problem keep the policy in force. True if changed."""
        if not isinstance(self.engine, EmbeddedPolicy) or self.policy_dir is None:
            return False
        self._fingerprint = _fingerprint(self.policy_dir)
        try:
            bundle = load_bundle(self.policy_dir, self.engine.rule)
        except PolicyLoadError as exc:
            log.error("policy reload failed; revision %s stays in force: %s", self.revision, exc)
            self.reload_error = str(exc)
            return False
        self.reload_error = None
        if bundle.revision == self.revision:
            return False
        previous = self.revision
        self.engine.replace(bundle)
        log.info("policy reloaded: revision %s replaces %s", bundle.revision, previous)
        return True

    def start(self, interval_s: float) -> None:
        """Reload on SIGHUP, and every ``interval_s`` if the files changed (0: SIGHUP only)."""
        if not isinstance(self.engine, EmbeddedPolicy):
            return
        loop = asyncio.get_running_loop()
        with suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        if interval_s > 0:
            self._watcher = asyncio.create_task(self._watch(interval_s), name="policy-watch")

    async def _watch(self, interval_s: float) -> None:
        assert self.policy_dir is not None
        while True:
            await asyncio.sleep(interval_s)
            if _fingerprint(self.policy_dir) != self._fingerprint:
                self.reload()

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with suppress(asyncio.CancelledError):
                await self._watcher
        with suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if isinstance(self.engine, OpaPolicy):
            await self.engine.aclose()


def _fingerprint(policy_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the policy files: cheap to compare."""
    entries = []
    for sub in ("rego", "data"):
        directory = policy_dir / sub
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            with suppress(OSError):
                stat = path.stat()
                entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)
