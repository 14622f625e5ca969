"""The rate-limit headers the official SDKs know, on every answer of a front door.

OpenAI's (also on the native door)::

    x-ratelimit-limit-requests: 100        x-ratelimit-limit-tokens: 1000000
    x-ratelimit-remaining-requests: 99     x-ratelimit-remaining-tokens: 999000
    x-ratelimit-reset-requests: 1m0s       x-ratelimit-reset-tokens: 650h20m5s

Anthropic's on ``/v1/messages``, resets as RFC 3339 times::

    anthropic-ratelimit-requests-limit / -remaining / -reset
    anthropic-ratelimit-tokens-limit / -remaining / -reset

Each tells the tightest of the caller's scopes: requests per minute, and the
monthly token budget (the tokens headers are absent without one). A refusal
adds ``retry-after`` (see :func:`llm_gateway.api.http.error_response`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llm_gateway.ratelimit import Admission, Window


def openai_headers(admission: Admission | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if admission is None:
        return headers
    for kind, window in (("requests", admission.requests), ("tokens", admission.tokens)):
        if window is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = duration(window.reset_s)
    return headers


def anthropic_headers(admission: Admission | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if admission is None:
        return headers
    now = datetime.now(UTC)
    for kind, window in (("requests", admission.requests), ("tokens", admission.tokens)):
        if window is not None:
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(window.limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(window.remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = _at(now, window)
    return headers


def duration(seconds: float) -> str:
    """OpenAI's reset format: ``250ms``, ``1.5s``, ``1m0s``, ``650h20m5s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s"


def _at(now: datetime, window: Window) -> str:
    moment = now + timedelta(seconds=window.reset_s)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
