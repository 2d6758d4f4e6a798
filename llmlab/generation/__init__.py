"""Decoding: samplers (logits -> token), the KV-cache engine (prefill, step, stop, stream, batch) and continuous
batching (rows join and leave a running batch).

Names are imported lazily so that `llmlab.generation.config` (used to build CLI flags) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Batcher": "llmlab.generation.batcher",
    "Completion": "llmlab.generation.rows",
    "Engine": "llmlab.generation.engine",
    "Event": "llmlab.generation.rows",
    "Row": "llmlab.generation.rows",
    "TextStream": "llmlab.generation.engine",
    "GenerationConfig": "llmlab.generation.config",
    "SamplingParams": "llmlab.generation.config",
    "load_engine": "llmlab.generation.engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmlab.generation' has no attribute {name!r}")
