from __future__ import annotations

import pytest

from llm_gateway.errors import ModelNotFound
from llm_gateway.routing import Resolver, unknown_model
from tests.pipeline.deployments import deployment


def test_a_model_name_resolves_to_its_one_deployment() -> None:
    gpt = deployment("gpt")
    resolution = Resolver({"gpt": gpt, "claude": deployment("claude")}).resolve("gpt")
    assert (resolution.requested, resolution.candidates) == ("gpt", (gpt,))


def test_an_unknown_name_is_model_not_found_naming_the_field() -> None:
    with pytest.raises(ModelNotFound) as raised:
        Resolver({"gpt": deployment("gpt")}).resolve("nope")
    assert raised.value.status == 404
    assert raised.value.param == "model"


def test_an_unknown_name_is_recorded_as_a_digest_only() -> None:
    recorded = unknown_model("sk-live-secret")
    assert recorded.startswith("unknown:sha256:")
    assert "secret" not in recorded
    assert recorded == unknown_model("sk-live-secret") != unknown_model("other")
