"""The transport's old address, kept while ``runtime.py`` and ``pipeline/`` still use it.

The transport is not provider-specific (the OPA client sends through it too),
so it lives in :mod:`llm_gateway.transport`, below both ``providers/`` and
``policy/``. New code imports it from there; this re-export goes once its last
importers (``runtime.py``, ``pipeline/__init__.py``, ``pipeline/call.py``) move.
"""

from llm_gateway.transport import (
    AiohttpTransport,
    Transport,
    UpstreamRequest,
    UpstreamResponse,
)

__all__ = ["AiohttpTransport", "Transport", "UpstreamRequest", "UpstreamResponse"]
