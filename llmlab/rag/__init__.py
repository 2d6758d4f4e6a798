"""Retrieval-augmented generation: load, chunk, embed, store, retrieve (and answer, in answer.py).

The Python API is `Store` (store.py): `Store.open(name_or_url)`, `store.ingest(paths)`, `store.search(query)`.
Names are imported lazily so that `import llmlab.rag.loaders` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Store": "llmlab.rag.store",
    "Filters": "llmlab.rag.stores.protocol",
    "StoreStats": "llmlab.rag.stores.protocol",
    "SearchConfig": "llmlab.rag.retrieval",
    "IngestConfig": "llmlab.rag.ingest",
    "IngestProgress": "llmlab.rag.ingest",
    "IngestReport": "llmlab.rag.ingest",
    "EmbedderConfig": "llmlab.rag.embedding",
    "load_embedder": "llmlab.rag.embedding",
    "Chunk": "llmlab.rag.types",
    "Document": "llmlab.rag.types",
    "Hit": "llmlab.rag.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmlab.rag' has no attribute {name!r}")
