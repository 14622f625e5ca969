from __future__ import annotations

import pytest

from llm_gateway.config.routing import Routing
from llm_gateway.errors import ModelNotFound
from llm_gateway.routing import Resolution, Resolver, unknown_model
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


def _routing(**sections: object) -> Routing:
    models = {"a": {"endpoint": "http://127.0.0.1:9/v1", "fallbacks": ["c"]}}
    models |= {n: {"endpoint": "http://127.0.0.1:9/v1"} for n in ("b", "c")}
    return Routing.model_validate({"models": models, **sections})


def test_a_model_is_followed_by_its_own_fallbacks_in_order() -> None:
    a, b, c = deployment("a"), deployment("b"), deployment("c")
    resolver = Resolver({"a": a, "b": b, "c": c}, _routing())
    assert resolver.resolve("a") == Resolution("a", (a, c), "model")
    assert resolver.resolve("b").candidates == (b,)


def test_a_chain_is_its_models_in_order_and_auto_is_every_model() -> None:
    a, b, c = deployment("a"), deployment("b"), deployment("c")
    resolver = Resolver({"a": a, "b": b, "c": c}, _routing(fallback_chains={"main": ["c", "a"]}))
    assert resolver.resolve("main") == Resolution("main", (c, a), "chain")
    assert resolver.resolve("auto") == Resolution("auto", (a, b, c), "auto")
    assert sorted(resolver.names()) == [
        ("a", "model"), ("auto", "auto"), ("b", "model"), ("c", "model"), ("main", "chain"),
    ]  # fmt: skip
