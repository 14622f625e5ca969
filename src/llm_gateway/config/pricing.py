"""``config/pricing.yaml``: what a million input and output tokens cost, per model.

Prices are looked up by the gateway's model name first and then by the
provider's model id, so one price list can serve several aliases of the same
upstream model.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: Annotated[float, Field(ge=0)]
    output_per_million: Annotated[float, Field(ge=0)]

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


class PricingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = "USD"
    models: dict[str, Price] = {}

    def price_for(self, *names: str | None) -> Price | None:
        for name in names:
            if name is not None and name in self.models:
                return self.models[name]
        return None
