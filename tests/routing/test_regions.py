"""Geographic routing: the caller's region, and each model's endpoints nearest first."""

from __future__ import annotations

from llm_gateway.config import Deployment
from llm_gateway.config.routing import Region
from llm_gateway.routing import Regions, Resolution, Router
from tests.pipeline.deployments import deployment

GPT = deployment("gpt", base_url="http://default/v1")
GPT_EU = deployment("gpt", base_url="http://eu/v1", region="eu")
GPT_US = deployment("gpt", base_url="http://us/v1", region="us")
GPT_AP = deployment("gpt", base_url="http://ap/v1", region="ap")
OTHER = deployment("other")
REGIONS = Regions(
    {
        "eu": Region.model_validate({"networks": ["10.1.0.0/16"], "nearest": ["us"]}),
        "us": Region.model_validate({"networks": ["10.2.0.0/16", "fd00::/8"]}),
        "ap": Region(),
    },
    {"gpt": {"eu": GPT_EU, "us": GPT_US, "ap": GPT_AP}},
)


def _urls(order: list[Deployment]) -> list[str]:
    return [d.base_url for d in order]


def test_the_header_names_the_region_and_else_the_clients_network_does() -> None:
    assert REGIONS.of("EU", "10.2.0.1") == "eu"  # the (trusted) header wins
    assert REGIONS.of("mars", "10.2.0.1") == "us"  # an unknown region in it is ignored
    assert REGIONS.of(None, "fd00::5") == "us"
    assert REGIONS.of(None, "192.0.2.1") is None
    assert REGIONS.of(None, None) is None
    assert REGIONS.of(None, "not-an-address") is None


def test_a_model_stands_for_its_endpoints_nearest_first() -> None:
    assert _urls(REGIONS.expand([GPT, OTHER], "eu")) == [
        "http://eu/v1", "http://us/v1", "http://default/v1", "http://ap/v1", OTHER.base_url,
    ]  # fmt: skip
    assert _urls(REGIONS.expand([GPT], "ap")) == [
        "http://ap/v1", "http://default/v1", "http://eu/v1", "http://us/v1",
    ]  # fmt: skip
    assert _urls(REGIONS.expand([GPT], None))[0] == "http://default/v1"


def test_endpoints_are_kept_apart_for_health_and_load() -> None:
    assert {GPT.key, GPT_EU.key, GPT_US.key} == {"gpt", "gpt@eu", "gpt@us"}


class Down:
    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)

    def is_up(self, name: str) -> bool:
        return name not in self.keys


async def test_the_nearest_healthy_endpoint_wins() -> None:
    router = Router(regions=REGIONS, health=Down("gpt@eu"))
    plan = await router.plan(Resolution("gpt", (GPT,)), None, tenant=None,
                             conversation_id=None, region="eu")  # fmt: skip
    usable = [d for d in plan.order if await router.unusable(d) is None]
    assert usable[0] is GPT_US
