"""The interface every RAG store implements (SQLite embedded, PostgreSQL at scale), and what they share.

A store holds documents (one per source, with the SHA-256 of its bytes), their chunks, a full-text index and
one unit-norm vector per chunk. Every write of a document is one transaction: its old chunks go and its new
ones arrive together, so a reader or a killed writer never sees half a document. Behaviour is tested on both
implementations by the same tests: tests/rag/test_store.py.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from llmlab.errors import ConfigError
from llmlab.rag.types import Chunk, Document, SourceType

SOURCE_TYPES: tuple[str, ...] = ("pdf", "html", "markdown", "text", "docx", "web")


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some sources. Empty filters match everything."""

    path: str | None = None
    """Glob over the source path or URL: `*` and `?` match any characters (`/` included), `[abc]` a set.
    A pattern that is not absolute (no leading `/` and no `scheme://`) may match from any folder boundary,
    so `docs/*.md` matches `/home/me/project/docs/intro.md`."""
    source_types: tuple[SourceType, ...] = ()
    """Only these source types (pdf, html, markdown, text, docx, web); empty means all."""

    def __post_init__(self) -> None:
        bad = [t for t in self.source_types if t not in SOURCE_TYPES]
        if bad:
            raise ConfigError(f"--type must be one of {', '.join(SOURCE_TYPES)}, got {bad[0]!r}")

    @property
    def empty(self) -> bool:
        return self.path is None and not self.source_types

    def matches(self, source: str, source_type: str) -> bool:
        """True when a document with this source and type passes the filters."""
        if self.source_types and source_type not in self.source_types:
            return False
        if self.path is None:
            return True
        if fnmatch.fnmatchcase(source, self.path):
            return True
        anchored = self.path.startswith("/") or "://" in self.path
        return not anchored and fnmatch.fnmatchcase(source, "*/" + self.path)


@dataclass
class StoreStats:
    """What a store holds."""

    location: str
    backend: str
    documents: int
    chunks: int
    embedder: str | None
    dim: int | None
    by_type: dict[str, int] = field(default_factory=dict)
    """Documents per source type."""


class VectorStore(Protocol):
    """Documents, chunks, a full-text index and vectors behind one interface.

    Chunk ids are integers, stable until the chunk's document is replaced.
    """

    location: str
    backend: str

    def embedder(self) -> tuple[str, int] | None:
        """The (name, dim) of the embedder recorded in the store, or None for a new store."""
        ...

    def bind_embedder(self, name: str, dim: int) -> None:
        """Record the embedder on first use; raise ConfigError if the store was built with another."""
        ...

    def document_hashes(self) -> dict[str, str]:
        """source -> content hash of every stored document."""
        ...

    def replace_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Atomically replace (or add) a document with its chunks and their (N, dim) float32 vectors."""
        ...

    def remove_documents(self, sources: Sequence[str]) -> int:
        """Delete documents and their chunks; returns how many documents were removed."""
        ...

    def dense_search(
        self, vector: np.ndarray, top_k: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the nearest chunks to a unit vector, best first."""
        ...

    def text_search(self, query: str, top_k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """(chunk id, full-text score, higher is better) for the words of `query`, best first."""
        ...

    def dense_scores(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine similarity of the chunks with these ids to a unit vector (ids not stored are left out)."""
        ...

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored (dim,) float32 vectors of these chunks (ids not stored are left out)."""
        ...

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these ids (missing ids are left out)."""
        ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...


def check_embedder(location: str, stored: tuple[str, int] | None, name: str, dim: int | None) -> None:
    """Raise ConfigError when a store's recorded embedder differs from the one offered (dim None: name only)."""
    if stored is None or stored == (name, dim) or (dim is None and stored[0] == name):
        return
    given = f"{name!r} ({dim}-dim)" if dim is not None else repr(name)
    raise ConfigError(
        f"store {location} was built with embedder {stored[0]!r} ({stored[1]}-dim) but {given} was given; "
        f"use --embedder {stored[0]}, or ingest into a new store"
    )


def check_vectors(chunks: Sequence[Chunk], vectors: np.ndarray, dim: int | None) -> np.ndarray:
    """Validate a document's vectors against its chunks; returns them as C-contiguous float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
        raise ConfigError(
            f"expected one vector per chunk ({len(chunks)}), got an array of shape {vectors.shape}"
        )
    if dim is not None and vectors.shape[1] != dim:
        raise ConfigError(f"vectors have dimension {vectors.shape[1]} but the store holds {dim}-dim vectors")
    return vectors
