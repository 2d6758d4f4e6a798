"""The records that flow through RAG: a loaded Document made of Units, the Chunks cut from it, search Hits.

    documents -> load (loaders/) -> Document(units) -> chunk (chunking.py) -> Chunk -> embed -> store
    query -> retrieve (retrieval.py) -> Hit(chunk, score) -> answer (answer.py) -> answer + sources

Contracts between the parts:
- loaders: `load_path(path, *, pdf_password=None) -> Document` for one file (raises `DataError` naming the
  file and the reason on a bad file); `crawl(url, *, max_depth, max_pages, delay) -> Iterator[Document]` for
  a website.
- chunking: `chunk_document(document, tokenizer, *, chunk_tokens, overlap_tokens) -> list[Chunk]`.
- embedding: an `Embedder` (see embedding.py) turns chunk texts into unit-norm float32 vectors.
- stores: one interface for SQLite and PostgreSQL (see stores/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SourceType = Literal["pdf", "html", "markdown", "text", "docx", "web"]

CITED_METADATA: tuple[str, ...] = ("author", "date", "site_name", "language")
"""Document metadata every chunk carries (stored once per document, joined on read), shown with sources."""


@dataclass
class Unit:
    """A piece of a document with its own location: one PDF page, or one section under a heading."""

    text: str
    page: int | None = None
    """1-based page number (PDF only)."""
    heading_path: tuple[str, ...] = ()
    """Headings above this text, outermost first, e.g. ("Install", "From source")."""


@dataclass
class Document:
    """One source (file or web page) as loaded, before chunking."""

    source: str
    """Path (as given, resolved) or URL; the identity used for re-ingest."""
    source_type: SourceType
    title: str
    units: list[Unit]
    content_hash: str
    """SHA-256 of the raw bytes; unchanged sources are skipped on re-ingest."""
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Chunk:
    """A retrievable piece of text and where it came from."""

    text: str
    source: str
    source_type: SourceType
    chunk_index: int
    """Position of the chunk within its document (0-based)."""
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    start: int = 0
    """Character offset of the chunk in its unit's text."""
    end: int = 0
    title: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    """The document's author, date, site_name and language, where known (CITED_METADATA)."""


def cited_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """The CITED_METADATA fields of a document's metadata, in that order."""
    return {key: metadata[key] for key in CITED_METADATA if metadata.get(key)}


@dataclass
class Hit:
    """A search result: the chunk, its fused or single-mode score, and its 1-based rank."""

    chunk: Chunk
    score: float
    rank: int
    chunk_id: int | str = 0
    scores: dict[str, float] = field(default_factory=dict)
    """Per-mode details, e.g. {"bm25": 7.1, "dense": 0.62}."""
