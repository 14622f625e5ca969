"""Local emulators of the OpenAI, Anthropic and Ollama chat APIs.

No real provider is reachable from tests (or from a demo install), so these
HTTP servers speak the providers' real wire formats, faithfully enough for the
official SDKs, and let a test script each answer with a directive written into
the last user (or tool) message: ``[[emulate {...json...}]]``. The directive is
removed before the echo is computed and is never counted as a token.

Directive keys (all optional): ``reply``, ``chunks``, ``tool_calls``
(``[{"name", "arguments", "id"?}]``), ``status`` with ``error_type``,
``error_message``, ``error_body``, ``retry_after``; ``latency_ms``,
``chunk_delay_ms``, ``hang``, ``truncate_after``, ``malformed``,
``stream_error``, ``usage`` (``false`` or ``{"input", "output"}``), ``finish``;
``models`` (``{"<upstream model id>": {...keys...}}``: keys merged over the
others for a request to that model only, say to fail one model of a chain).
See :mod:`llm_gateway.emulators.behaviour` for their exact meaning.

Public API:

- :func:`create_emulator_app` builds the Starlette app (all three formats, plus
  ``GET``/``DELETE /_emulator/requests`` to read or clear the request log).
- :class:`EmulatorServer` runs it on 127.0.0.1 and an ephemeral port, in an
  event loop (``async with``) or in a thread (``start_in_thread``/``stop``).
- ``python -m llm_gateway.emulators`` runs it in the foreground.
"""

from llm_gateway.emulators.app import create_emulator_app, emulator_state
from llm_gateway.emulators.behaviour import Directive, Script, Turn, build_script
from llm_gateway.emulators.server import EmulatorServer
from llm_gateway.emulators.state import REQUEST_LOG_LIMIT, EmulatorState

__all__ = [
    "REQUEST_LOG_LIMIT",
    "Directive",
    "EmulatorServer",
    "EmulatorState",
    "Script",
    "Turn",
    "build_script",
    "create_emulator_app",
    "emulator_state",
]
