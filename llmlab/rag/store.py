"""The RAG Python API: `Store.open(name_or_url)`, `store.ingest(paths)`, `store.search(query)`.

    with Store.open("notes") as store:              # ~/.llmlab/stores/notes.sqlite
        report = store.ingest(["docs/"], prune=True)
        hits = store.search("how do I resume training?", mode="hybrid", top_k=5)

The embedder is loaded on first use (BM25-only searches never load it). A store remembers the embedder it
was built with; opening it with another raises `ConfigError` before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from llmlab.errors import ConfigError
from llmlab.models.registry import DEFAULT_EMBEDDER, REGISTRY
from llmlab.rag.embedding import Embedder, EmbedderConfig, load_embedder
from llmlab.rag.ingest import IngestConfig, IngestProgress, IngestReport, ingest
from llmlab.rag.retrieval import SearchConfig, search
from llmlab.rag.stores import open_store
from llmlab.rag.stores.protocol import Filters, StoreStats, VectorStore, check_embedder
from llmlab.rag.types import Hit, SourceType


def embedder_identity(model: str) -> str:
    """The name a store records for `--embedder`: the registry name, or the resolved folder path."""
    return model if model in REGISTRY else str(Path(model).expanduser().resolve())


class Store:
    """A RAG store (SQLite file or PostgreSQL database) together with the embedder it was built with."""

    def __init__(self, backend: VectorStore, embedder: Embedder | EmbedderConfig | None = None) -> None:
        self.backend = backend
        self._embedder: Embedder | None = None
        stored = backend.embedder()
        if isinstance(embedder, EmbedderConfig) or embedder is None:
            if embedder is None:
                embedder = EmbedderConfig(model=stored[0] if stored else DEFAULT_EMBEDDER)
            check_embedder(backend.location, stored, embedder_identity(embedder.model), None)
            self._config = embedder
        else:
            check_embedder(backend.location, stored, embedder.name, embedder.dim)
            self._embedder = embedder
            self._config = EmbedderConfig(model=DEFAULT_EMBEDDER)

    @classmethod
    def open(
        cls,
        name_or_url: str,
        *,
        embedder: str | Embedder | EmbedderConfig | None = None,
        create: bool = True,
    ) -> Store:
        """Open or create the store named by a `--store` value (name, .sqlite/.db path, postgresql:// URL).

        Args:
            embedder: a model name or folder, an `EmbedderConfig`, or a loaded `Embedder`; default: the one
                the store was built with, else minilm-l6.
            create: False to refuse a store that does not exist (ConfigError naming the stores there are)
                rather than create an empty one; reading commands open stores this way.
        """
        if isinstance(embedder, str):
            embedder = EmbedderConfig(model=embedder)
        return cls(open_store(name_or_url, create=create), embedder)

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded on first use and checked against the one recorded in the store."""
        if self._embedder is None:
            loaded = load_embedder(self._config)
            check_embedder(self.location, self.backend.embedder(), loaded.name, loaded.dim)
            self._embedder = loaded
        return self._embedder

    def ingest(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        prune: bool = False,
        progress: Callable[[IngestProgress], None] | None = None,
        config: IngestConfig | None = None,
    ) -> IngestReport:
        """Add, update (and with prune=True remove) documents from files, folders and URLs."""
        config = config or IngestConfig()
        if prune:
            config = replace(config, prune=True)
        return ingest(self.backend, self.embedder, sources, config, progress)

    def search(
        self,
        query: str,
        mode: str = "hybrid",
        top_k: int = 5,
        filters: Filters | None = None,
        *,
        path: str | None = None,
        source_types: Sequence[SourceType] = (),
        config: SearchConfig | None = None,
    ) -> list[Hit]:
        """The `top_k` best chunks for `query` (modes: hybrid, dense, bm25; see retrieval.py).

        Args:
            filters: restrict by source glob and type; `path=` and `source_types=` are shortcuts for it.
            config: full search settings (RRF k, weights, candidates); overrides `mode` and `top_k`.
        """
        if filters is not None and (path is not None or source_types):
            raise ConfigError("give either filters= or path=/source_types=, not both")
        if filters is None and (path is not None or source_types):
            filters = Filters(path=path, source_types=tuple(source_types))
        config = config or SearchConfig(mode=mode, top_k=top_k)
        embed = self.embedder.embed if config.mode != "bm25" else None
        return search(self.backend, query, embed, config, filters)

    def remove(self, sources: Sequence[str]) -> int:
        """Delete documents by source; returns how many were stored."""
        return self.backend.remove_documents(sources)

    def stats(self) -> StoreStats:
        return self.backend.stats()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
