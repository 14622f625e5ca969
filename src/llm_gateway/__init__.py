"""LLM Security Gateway: authenticate, inspect, route and audit every call to an LLM."""

__version__ = "0.1.0"
