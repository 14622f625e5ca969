"""Routing: which deployments serve a requested name, and in which order to try them.

Today a name is a model and resolves to its one deployment. Fallback chains,
``auto``, strategies, circuit breakers and health checks grow here, behind
:class:`~llm_gateway.routing.resolver.Resolver`, without the stages changing shape.
"""

from llm_gateway.routing.resolver import Resolution, Resolver, model_not_found, unknown_model

__all__ = ["Resolution", "Resolver", "model_not_found", "unknown_model"]
