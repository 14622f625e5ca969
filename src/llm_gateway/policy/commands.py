"""``llm-gateway policy eval`` and ``llm-gateway policy test``: the policy, outside the server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from llm_gateway.policy import PolicyLoadError, PolicyService, rule_of
from llm_gateway.policy.bundle import load_bundle, run_tests
from llm_gateway.settings import PolicySettings

EXIT_FAILED = 1
EXIT_CONFIG = 2


def eval_command(input_path: str, settings: PolicySettings) -> int:
    """Print the decision for the input document in ``input_path`` (``-``: stdin)."""
    try:
        raw = sys.stdin.buffer.read() if input_path == "-" else Path(input_path).read_bytes()
        document = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"error: {input_path}: cannot read a JSON input document: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(document, dict) and "input" in document:
        document = document["input"]  # OPA's {"input": ...} envelope works as well
    if not isinstance(document, dict):
        print(f"error: {input_path}: the input document must be a JSON object", file=sys.stderr)
        return EXIT_CONFIG
    try:
        service = PolicyService.from_settings(settings)
    except PolicyLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def decide() -> int:
        try:
            decision = await service.decide(document)
        finally:
            await service.aclose()
        print(orjson.dumps({
            "allow": decision.allow,
            "reasons": list(decision.reasons),
            "obligations": {
                "deanonymize": decision.obligations.deanonymize,
                "dlp_mode": decision.obligations.dlp_mode,
                "max_tokens": decision.obligations.max_tokens,
                "features": sorted(decision.obligations.features)
                if decision.obligations.features is not None else None,
            },
            "revision": decision.revision,
            "error": decision.error,
            "eval_us": round(decision.eval_us, 1),
        }, option=orjson.OPT_INDENT_2).decode())  # fmt: skip
        return 0 if decision.error is None else EXIT_FAILED

    return asyncio.run(decide())


def test_command(settings: PolicySettings) -> int:
    """Run every ``test_`` rule of the ``*_test.rego`` files; any false or undefined one fails."""
    try:
        bundle = load_bundle(
            settings.policy_dir, rule_of(settings.opa_policy_path), with_tests=False
        )
    except PolicyLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not bundle.tests:
        print(f"no *_test.rego files under {settings.policy_dir / 'rego'}", file=sys.stderr)
        return EXIT_FAILED
    results = run_tests(bundle)
    for t in results:
        print(f"{'FAIL' if t.problem else 'PASS'} {t.module}: {t.name}"
              + (f" ({t.problem})" if t.problem else ""))  # fmt: skip
    failed = sum(t.problem is not None for t in results)
    passed = len(results) - failed
    print(f"{passed} passed, {failed} failed (policy revision {bundle.revision})")
    return EXIT_FAILED if failed or not passed else 0
