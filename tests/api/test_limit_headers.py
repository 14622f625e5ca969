"""The rate-limit headers in the formats the official SDKs know, and whose address counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from llm_gateway.api.http import client_ip
from llm_gateway.api.limit_headers import anthropic_headers, duration, openai_headers
from llm_gateway.ratelimit import Admission, Window
from llm_gateway.settings.server import Network, networks


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (0, "0ms"), (1.5, "1.5s"), (59.87, "59.87s"), (60, "1m0s"),
     (61.4, "1m1s"), (3600 * 650 + 1205, "650h20m5s")],
)  # fmt: skip
def test_resets_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


ADMITTED = Admission(
    requests=Window("tenant", 100, 7, 60.0), tokens=Window("user", 10_000, 250, 86_400.0)
)


def test_openai_headers_tell_the_tightest_windows() -> None:
    assert openai_headers(ADMITTED) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "250",
        "x-ratelimit-reset-tokens": "24h0m0s",
    }
    assert openai_headers(None) == {}
    assert openai_headers(Admission()) == {}  # the store failed open: nothing to tell


def test_anthropic_headers_reset_at_a_time() -> None:
    headers = anthropic_headers(ADMITTED)
    assert headers["anthropic-ratelimit-requests-limit"] == "100"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "250"
    reset_text = headers["anthropic-ratelimit-tokens-reset"]
    assert reset_text.endswith("Z")
    reset = datetime.fromisoformat(reset_text.replace("Z", "+00:00"))
    assert abs(reset - (datetime.now(UTC) + timedelta(days=1))) < timedelta(seconds=5)


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "headers": headers, "client": (peer, 1234)})


PROXIES = networks("10.0.0.0/8, ::1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "seen"),
    [
        ("203.0.113.5", ["1.2.3.4"], PROXIES, "203.0.113.5"),  # not a proxy: header ignored
        ("127.0.0.1", ["1.2.3.4"], (), "127.0.0.1"),  # no proxies trusted at all
        ("10.1.1.1", ["1.2.3.4"], PROXIES, "1.2.3.4"),
        ("10.1.1.1", ["6.6.6.6, 1.2.3.4, 10.2.2.2"], PROXIES, "1.2.3.4"),  # nearest untrusted
        ("10.1.1.1", ["6.6.6.6", "1.2.3.4"], PROXIES, "1.2.3.4"),  # several headers, in order
        ("10.1.1.1", ["1.2.3.4, nonsense"], PROXIES, "10.1.1.1"),  # a malformed hop stops it
        ("::1", ["2001:db8::7"], PROXIES, "2001:db8::7"),
        ("10.1.1.1", ["10.3.3.3"], PROXIES, "10.3.3.3"),  # only proxies: the farthest
    ],
)
def test_the_client_address_comes_from_trusted_proxies_only(
    peer: str, forwarded: list[str], trusted: tuple[Network, ...], seen: str
) -> None:
    assert client_ip(_request(peer, *forwarded), trusted) == seen


def test_trusted_proxies_must_be_addresses_or_blocks() -> None:
    with pytest.raises(ValueError, match="neither"):
        networks("10.0.0.0/8, proxy.internal")
