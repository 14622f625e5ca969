"""Decisions from regorus, in-process, on the calling thread.

A regorus engine is bound to the thread that created it (using it from another
thread panics), so each thread gets its own prepared engine, rebuilt when the
policy is reloaded. An evaluation is cheap enough to run on the event loop;
offloading it to a thread would cost more than it saves. Cheap is still some
70 µs for the shipped decision (150 µs under load, its caches cold), the
largest single cost of a request; so decisions are kept by the values of the
input paths the policy reads (:mod:`llm_gateway.policy.dependencies`), when
the policy allows it, up to ``cache_size`` of them per loaded policy. A reload
starts afresh. A failed evaluation is never kept.

Any failure to evaluate denies (fail closed). Regorus reports panics as
``BaseException`` subclasses, which are caught too; the thread's engine is then
dropped, in case the panic left it inconsistent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
import regorus

from llm_gateway.policy.bundle import PolicyBundle, engine_message
from llm_gateway.policy.decision import Decision, PolicyError, decision_from_result
from llm_gateway.policy.dependencies import input_paths

log = logging.getLogger(__name__)


class EmbeddedPolicy:
    def __init__(self, bundle: PolicyBundle, rule: str, *, cache_size: int = 0) -> None:
        self.rule = rule  # e.g. data.llm.authz.allow
        self.cache_size = cache_size
        self._local = threading.local()
        self._lock = threading.Lock()  # around the cache's evictions
        self._take(bundle)

    @property
    def revision(self) -> str:
        return self._state[0].revision

    @property
    def bundle(self) -> PolicyBundle:
        return self._state[0]

    def replace(self, bundle: PolicyBundle) -> None:
        """Take a newly loaded policy; each thread rebuilds its engine on its next decision."""
        self._take(bundle)

    def _take(self, bundle: PolicyBundle) -> None:
        reads = input_paths(module.text for module in bundle.modules)
        if self.cache_size and not reads.cacheable:
            log.info("policy decisions are evaluated every time: %s", reads.refusal)
        # One assignment publishes the bundle with its own analysis and an empty cache.
        self._state = (bundle, reads, dict[bytes, Decision]())

    async def decide(self, document: dict[str, Any]) -> Decision:
        return self.decide_now(document)

    async def decide_many(self, documents: list[dict[str, Any]]) -> list[Decision]:
        return [self.decide_now(document) for document in documents]

    def decide_now(self, document: dict[str, Any]) -> Decision:
        started = time.perf_counter()
        bundle, reads, kept = self._state
        key = _key(document, reads.paths) if self.cache_size and reads.cacheable else None
        if key is not None and (decision := kept.get(key)) is not None:
            return dataclasses.replace(decision, eval_us=(time.perf_counter() - started) * 1e6)
        try:
            engine = self._engine(bundle)
            engine.set_input_json(orjson.dumps(document).decode())  # faster than set_input
            decision = decision_from_result(engine.eval_rule(self.rule), revision=bundle.revision)
        except PolicyError as exc:
            decision = self._failed(bundle, str(exc))
        except BaseException as exc:  # regorus errors, and its panics; never an interrupt
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            if not isinstance(exc, Exception):
                self._local.engine = None  # a panic may have left the engine inconsistent
            decision = self._failed(bundle, engine_message(exc))
        if key is not None and decision.error is None:
            self._keep(kept, key, decision)
        return dataclasses.replace(decision, eval_us=(time.perf_counter() - started) * 1e6)

    def _keep(self, kept: dict[bytes, Decision], key: bytes, decision: Decision) -> None:
        with self._lock:
            while len(kept) >= self.cache_size:
                del kept[next(iter(kept))]  # the oldest: dicts keep their order
            kept[key] = decision

    def _engine(self, bundle: PolicyBundle) -> regorus.Engine:
        local = self._local
        if getattr(local, "engine", None) is None or local.bundle is not bundle:
            local.engine = bundle.new_engine()
            local.bundle = bundle
        engine: regorus.Engine = local.engine
        return engine

    def _failed(self, bundle: PolicyBundle, problem: str) -> Decision:
        log.warning("policy evaluation failed (revision %s); denying: %s", bundle.revision, problem)
        return Decision.failed(problem, bundle.revision)


_ABSENT = b"\x00"  # a path the input does not have (unlike null: Rego tells them apart)


def _key(document: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]) -> bytes:
    """The values at ``paths`` in ``document``, as one comparable string."""
    parts: list[bytes] = []
    for path in paths:
        node: Any = document
        for name in path:
            if not isinstance(node, Mapping) or name not in node:
                parts.append(_ABSENT)
                break
            node = node[name]
        else:
            parts.append(orjson.dumps(node, option=orjson.OPT_SORT_KEYS))
    return b"\x01".join(parts)
