"""``python -m llm_gateway.emulators``: run the provider emulator in the foreground.

For local demos and for CI scripts that start the emulator as a separate
process: the parent waits for the ``emulator listening on URL`` line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llm_gateway.emulators.server import run_foreground


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until interrupted; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m llm_gateway.emulators",
        description="Local emulator of the OpenAI, Anthropic and Ollama chat APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9100, help="port (0 picks a free one)")
    parser.add_argument("--api-key", default=None, help="require exactly this API key")
    parser.add_argument("--latency-ms", type=int, default=0, help="wait before every answer")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    return run_foreground(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        latency_ms=args.latency_ms,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    sys.exit(main())
