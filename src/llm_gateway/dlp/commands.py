"""``llm-gateway dlp scan FILE|-``: the gateway's detectors on a file, as the scan API answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from llm_gateway.config import ConfigError
from llm_gateway.dlp.report import finding_json, redact_all
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
            dlp = await DlpService.start(settings.dlp, settings.state)
        except ConfigError as exc:
            print(f"error: invalid DLP rules:\n{exc}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            scanned = await dlp.scan([text])
        finally:
            await dlp.aclose()
        (findings,) = scanned.findings
        body: dict[str, object] = {
            "findings": [finding_json(f) for f in findings],
            "ner": str(scanned.ner),
        }
        if redact:
            body["redacted_text"] = redact_all(text, findings)
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return EXIT_FOUND if findings else 0

    return asyncio.run(run())
