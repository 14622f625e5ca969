"""The one place a requested model name is looked up.

``Authorize`` resolves the name before asking the policy, so a name the
gateway does not serve is the caller's mistake (404) reported in one place
with one error; the policy then decides on the name asked for and on each
candidate; ``Route`` walks the candidates in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from llm_gateway.config import Deployment
from llm_gateway.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a requested name stands for: the deployments that may serve it, best first."""

    requested: str
    candidates: tuple[Deployment, ...]


class Resolver:
    def __init__(self, deployments: Mapping[str, Deployment]) -> None:
        self.deployments = deployments
        # Resolved once: a resolution is immutable, and asked for on every request.
        self._resolutions = {name: Resolution(name, (d,)) for name, d in deployments.items()}

    def resolve(self, name: str) -> Resolution:
        """The candidates for ``name``; :class:`ModelNotFound` if it names nothing served here."""
        resolution = self._resolutions.get(name)
        if resolution is None:
            raise model_not_found(name)
        return resolution


def model_not_found(name: str) -> ModelNotFound:
    return ModelNotFound(
        f"the model {name!r} is not served here; GET /v1/models lists yours", param="model"
    )


def unknown_model(name: str) -> str:
    """How a model name the gateway does not serve is recorded: a digest, never the text
    (a caller can put anything in it, a key included)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"unknown:sha256:{digest[:16]}"
