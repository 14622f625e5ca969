"""The serving worker's garbage-collector settings (llm_gateway.heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from llm_gateway import app as app_module
from llm_gateway import heap

CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the test process's collector back as it was."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_settling_freezes_the_start_up_heap_and_spaces_out_young_passes() -> None:
    gc.unfreeze()
    heap.settle(20_000)
    assert gc.get_threshold()[0] == 20_000
    assert gc.get_freeze_count() > 10_000  # the modules, at least, are frozen


@pytest.mark.usefixtures("collector")
def test_a_threshold_of_zero_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    heap.settle(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("serving", [True, False], ids=["served", "built-by-hand"])
def test_only_the_serving_factory_settles_the_heap(
    serving: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled: list[int] = []
    monkeypatch.setattr(heap, "settle", settled.append)
    env = {"DATA_DIR": str(tmp_path), "CONFIG_DIR": str(CONFIG), "DLP_NER": "off",
           "DEMO_MODEL": "off", "GC_GEN0_THRESHOLD": "12345"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gateway = app_module.create_app_from_env() if serving else app_module.create_app()
    with TestClient(gateway) as client:  # runs the lifespan
        assert client.get("/health").status_code == 200
    assert settled == ([12345] if serving else [])
