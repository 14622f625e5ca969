"""Geographic routing: which region a caller is in, and a model's endpoints nearest first.

A model may list an endpoint per region (``endpoints`` in the routing file);
``regions`` says which client networks each region holds and which regions
are nearest to it, in order. A caller's region is the ``x-gateway-region``
header when a trusted proxy (``TRUSTED_PROXIES``) sent it, else the region
whose networks hold the client's address, else none. Each model then stands
for its endpoints in this order: the caller's region, its nearest regions,
the model's own ``endpoint``, then any other region; the Route stage passes
over those that are down or open-circuited, so the nearest healthy one wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from llm_gateway.config import Deployment
from llm_gateway.config.routing import Region

REGION_HEADER = "x-gateway-region"


class Regions:
    def __init__(
        self,
        regions: Mapping[str, Region],
        regional: Mapping[str, Mapping[str, Deployment]],
    ) -> None:
        self._networks = [(net, name) for name, r in regions.items() for net in r.networks]
        self._nearest = {name: [name, *r.nearest] for name, r in regions.items()}
        self._regional = regional

    def __bool__(self) -> bool:
        return bool(self._regional)

    def of(self, header: str | None, client_ip: str | None) -> str | None:
        """The caller's region: ``header`` (pass it only from a trusted proxy) if it names a
        known region, else the one whose networks hold ``client_ip``."""
        if header is not None:
            name = header.strip().lower()
            if name in self._nearest:
                return name
        if client_ip is None or not self._networks:
            return None
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return None
        return next((name for net, name in self._networks if address in net), None)

    def expand(self, candidates: Sequence[Deployment], region: str | None) -> list[Deployment]:
        """Each candidate as its endpoints, nearest first (see the module's docstring)."""
        if not self._regional:
            return list(candidates)
        order = self._nearest.get(region, []) if region is not None else []
        expanded: list[Deployment] = []
        for d in candidates:
            endpoints = self._regional.get(d.name)
            if not endpoints:
                expanded.append(d)
                continue
            expanded += [endpoints[r] for r in order if r in endpoints]
            expanded.append(d)
            expanded += [e for r, e in endpoints.items() if r not in order]
        return expanded
