"""Serving: an OpenAI-compatible HTTP API with continuous batching, and the web page (`llmlab serve`).

    from llmlab.generation import load_engine
    from llmlab.serving import BackgroundServer, ServeConfig, Server

    with BackgroundServer(Server(load_engine("smollm2-135m-instruct"), ServeConfig(port=0), "smollm2")) as s:
        print(s.url)          # http://127.0.0.1:PORT; point any OpenAI client at s.url + "/v1"

Layers: http.py (HTTP/1.1 on asyncio, limits), app.py (routes, API key, web files), api.py and rag.py (the
OpenAI routes; retrieval answers), bodies.py (request checking), scheduler.py (the engine thread driving the
Batcher), tools.py, tool_chat.py and tool_grammar.py (tool calls), playground.py, feedback.py, web/ (the page).
Names are imported lazily so that building the CLI's flags does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackgroundServer": "llmlab.serving.app",
    "Server": "llmlab.serving.app",
    "ServeConfig": "llmlab.serving.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmlab.serving' has no attribute {name!r}")
