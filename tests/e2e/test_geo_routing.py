"""Geographic routing through the real server: the caller's region picks the endpoint.

Two emulators stand for a model's endpoints in two regions; which one served
a request is read from its own request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import PROVIDER_KEY, Gateway, start_gateway, stop_gateway

ROUTING = """
routing:
  models:
    gpt-emu:
      endpoint: {default}/v1
      provider: openai
      upstream_model: gpt-4o-mini
      api_key: {key}
      endpoints:
        eu: {eu}/v1
        us: {us}/v1
  regions:
    eu:
      networks: ["10.9.0.0/16"]
      nearest: [us]
    us:
      networks: ["127.0.0.0/8"]
"""


@pytest.fixture
def endpoints() -> Iterator[dict[str, EmulatorServer]]:
    servers = {r: EmulatorServer(api_key=PROVIDER_KEY).start_in_thread() for r in ("eu", "us")}
    try:
        yield servers
    finally:
        for server in servers.values():  # those a test stopped are gone from the mapping
            server.stop()


def _gateway(
    tmp_path: Path,
    emulator: EmulatorServer,
    endpoints: dict[str, EmulatorServer],
    env: dict[str, str],
) -> Gateway:
    routing = ROUTING.format(
        default=emulator.base_url, key=PROVIDER_KEY,
        eu=endpoints["eu"].base_url, us=endpoints["us"].base_url,
    )  # fmt: skip
    return start_gateway(
        tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db", env, routing=routing
    )


def _served_by(gateway: Gateway, endpoints: dict[str, EmulatorServer], **headers: str) -> str:
    for server in endpoints.values():
        httpx.delete(server.base_url + "/_emulator/requests")
    with gateway.http() as http:
        answer = http.post(
            "/v1/chat/completions",
            json={"model": "gpt-emu", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {gateway.token()}", **headers},
        )
    assert answer.status_code == 200, answer.text
    served = [
        region
        for region, server in endpoints.items()
        if httpx.get(server.base_url + "/_emulator/requests").json()
    ]
    assert len(served) == 1, served
    return served[0]


def test_the_region_header_counts_only_from_a_trusted_proxy(
    emulator: EmulatorServer, endpoints: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    gateway = _gateway(tmp_path, emulator, endpoints, {})
    try:
        # 127.0.0.1 is in us's networks; the header from an untrusted peer is ignored.
        assert _served_by(gateway, endpoints) == "us"
        assert _served_by(gateway, endpoints, **{"x-gateway-region": "eu"}) == "us"
    finally:
        stop_gateway(gateway)


def test_a_trusted_proxys_region_wins_and_the_nearest_endpoint_takes_over(
    emulator: EmulatorServer, endpoints: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    gateway = _gateway(tmp_path, emulator, endpoints, {"TRUSTED_PROXIES": "127.0.0.1/32"})
    try:
        assert _served_by(gateway, endpoints, **{"x-gateway-region": "eu"}) == "eu"
        assert _served_by(gateway, endpoints) == "us"
        endpoints.pop("eu").stop()  # eu's endpoint fails: its nearest region serves
        assert _served_by(gateway, endpoints, **{"x-gateway-region": "eu"}) == "us"
    finally:
        stop_gateway(gateway)
