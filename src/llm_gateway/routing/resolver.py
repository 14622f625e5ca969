"""The one place a requested name is looked up.

A request names one of three things, and each resolves to its candidates:

- a **model** (``claude-sonnet``): that model, then the models its
  ``fallbacks`` list, in order (none unless configured, as in LiteLLM);
- a **fallback chain** (``production``, a key of ``fallback_chains``): the
  chain's models, in order;
- **``auto``**: every model served; :class:`~llm_gateway.routing.router.Router`
  orders them per request (capability rules, experiments, the default strategy).

``Authorize`` resolves the name before asking the policy, so a name the
gateway does not serve is the caller's mistake (404) reported in one place
with one error; the policy then decides on the name asked for and on each
candidate, and drops the candidates it does not allow; ``Route`` walks what
is left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llm_gateway.config import Deployment
from llm_gateway.config.routing import AUTO, Routing
from llm_gateway.errors import ModelNotFound

Kind = Literal["model", "chain", "auto"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a requested name stands for: the deployments that may serve it, best first."""

    requested: str
    candidates: tuple[Deployment, ...]
    kind: Kind = "model"


class Resolver:
    def __init__(
        self, deployments: Mapping[str, Deployment], routing: Routing | None = None
    ) -> None:
        self.deployments = deployments
        # Resolved once: a resolution is immutable, and asked for on every request.
        models = routing.models if routing is not None else {}
        resolutions = {}
        for name, deployment in deployments.items():
            entry = models.get(name)
            fallbacks = tuple(deployments[n] for n in entry.fallbacks) if entry else ()
            resolutions[name] = Resolution(name, (deployment, *fallbacks))
        for chain, names in (routing.fallback_chains if routing is not None else {}).items():
            members = tuple(deployments[n] for n in names)
            resolutions[chain] = Resolution(chain, members, "chain")
        resolutions[AUTO] = Resolution(AUTO, tuple(deployments.values()), "auto")
        self._resolutions = resolutions

    def names(self) -> list[tuple[str, Kind]]:
        """Every name a request may ask for, with what it is: what ``/v1/models`` lists."""
        return [(name, r.kind) for name, r in self._resolutions.items()]

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
