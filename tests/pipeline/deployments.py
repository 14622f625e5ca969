"""Deployments for stage tests: enough to route and record, never called over the network."""

from __future__ import annotations

from typing import Any

from llm_gateway.config import Deployment, Provider


def deployment(name: str, **fields: Any) -> Deployment:
    values: dict[str, Any] = {
        "name": name,
        "provider": Provider.OPENAI,
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_model": f"{name}-upstream",
        "api_key": "sk-test",
        "timeout_s": 5.0,
        "max_concurrent": 10,
        "weight": 1,
        "default_max_tokens": 1024,
        "price": None,
    }
    values.update(fields)
    return Deployment(**values)
