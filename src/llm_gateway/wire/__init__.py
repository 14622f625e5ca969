"""The wire formats the gateway speaks, on both of its sides.

OpenAI Chat Completions, Anthropic Messages and Ollama's chat API are each
spoken twice: by a front door (``api/``) to the gateway's clients, and by a
provider adapter (``providers/``) to the upstreams. What the two sides must
agree on lives here, once: the formats' tables (finish reasons) and the
encoders both sides use (tool calls as OpenAI writes them, content blocks and
tool arguments as Anthropic writes them), plus server-sent events framing
(:mod:`llm_gateway.wire.sse`), which every front door writes and the OpenAI
and Anthropic adapters read. Defining them once is what keeps an OpenAI client talking
to Claude, and an Anthropic client talking to a local model, from drifting out
of step when one side changes.

What only one side uses stays with it: request parsing and error shapes in the
front doors, request building and headers in the adapters. Ollama shares
nothing with a front door (the gateway has no Ollama door), so it has no
module here; its adapter uses the tool-argument conversion it has in common
with Anthropic from :mod:`llm_gateway.wire.anthropic`.

This layer sits just above the canonical model: it imports only
:mod:`llm_gateway.chat` and :mod:`llm_gateway.errors`, never ``api/``,
``providers/``, ``pipeline/`` or ``policy/`` (``tests/test_layers.py`` checks).
The local emulators (:mod:`llm_gateway.emulators`) deliberately do not use it:
an independent rendering of each format is what catches a bug here.
"""
