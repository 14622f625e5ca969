"""``llm-gateway dlp scan FILE|-``: the gateway's detectors on a file, as the scan API answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from llm_gateway.config import ConfigError
from llm_gateway.dlp.outbound import redact_with_markers
from llm_gateway.dlp.service import DlpService
from llm_gateway.settings import Settings

EXIT_FOUND = 1  # like grep: 0 when clean, 1 when something was found
EXIT_CONFIG = 2


def scan_command(source: str, settings: Settings, *, redact: bool) -> int:
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: {source}: cannot read UTF-8 text: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def run() -> int:
        try:
            dlp = await DlpService.start(settings)
        except ConfigError as exc:
            print(f"error: invalid DLP rules:\n{exc}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            findings = (await dlp.scan_all([text]))[0]
        finally:
            await dlp.aclose()
        body: dict[str, object] = {
            "findings": [
                {"entity": f.entity, "category": f.category, "start": f.start, "end": f.end,
                 "score": round(f.score, 3), "rule": f.rule, "action": f.action.value}
                for f in findings
            ]
        }  # fmt: skip
        if redact:
            body["redacted_text"] = redact_with_markers(text, findings)
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return EXIT_FOUND if findings else 0

    return asyncio.run(run())
