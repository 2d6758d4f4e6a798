"""Ingest: walk files, folders and URLs -> load -> chunk -> embed -> store, incrementally by content hash.

    for each source: sha256(bytes) == stored hash -> unchanged (not even parsed)
                     else load -> chunk (embedder's tokenizer) -> queue
    when the queue holds `batch_chunks` chunks: embed them together (length-sorted batches), then write each
    document in its own transaction (old chunks out, new chunks in); with prune=True, stored sources under
    the given folders/URLs that were not found this time are removed.

A source that fails to load is reported with its reason and keeps its previously stored version; nothing
else is lost. A process killed mid-ingest loses only the documents queued but not yet written (at most one
embedding batch); the next ingest finds them missing or changed and completes the store:
tests/rag/test_ingest.py::test_sigkill_leaves_consistent_store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from llmlab.errors import ConfigError, DataError, MissingDependencyError
from llmlab.rag.chunking import DEFAULT_CHUNK_TOKENS, check_sizes, chunk_document
from llmlab.rag.embedding import Embedder
from llmlab.rag.loaders.ocr import check_ocr_mode
from llmlab.rag.stores.protocol import VectorStore
from llmlab.rag.types import Chunk, Document

Status = Literal["added", "updated", "unchanged", "removed", "failed", "skipped"]


@dataclass
class IngestConfig:
    """How sources are found, chunked and written."""

    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    """Most tokens in a chunk (the embedder's tokenizer, special tokens not counted)."""
    overlap_tokens: int | None = None
    """Tokens repeated between neighbouring chunks; default chunk_tokens // 5."""
    prune: bool = False
    """Remove stored documents under the given folders or URLs that are no longer there."""
    include: tuple[str, ...] = ()
    """Only files matching these globs (relative path or file name), when walking folders."""
    exclude: tuple[str, ...] = ()
    """Leave out files matching these globs."""
    batch_chunks: int = 256
    """Chunks embedded together before their documents are written (a kill loses at most these)."""
    pdf_password: str | None = None
    """Password for encrypted PDFs."""
    max_file_mb: float = 64.0
    """Refuse (report as failed) files and web pages larger than this many MiB."""
    max_pdf_pages: int = 5000
    """Refuse PDFs with more pages than this."""
    ocr: Literal["auto", "always", "never"] = "auto"
    """OCR for PDF pages: auto reads pages without a text layer (scans) when the ocr extra is installed,
    always reads every page, never reads none."""
    max_depth: int = 2
    """Link depth followed when crawling a URL."""
    max_pages: int = 100
    """Most pages fetched per crawled URL."""
    delay: float = 0.5
    """Seconds between requests to the same site when crawling."""

    def __post_init__(self) -> None:
        check_sizes(
            self.chunk_tokens, self.chunk_tokens // 5 if self.overlap_tokens is None else self.overlap_tokens
        )
        if self.batch_chunks < 1:
            raise ConfigError(f"--batch-chunks must be at least 1, got {self.batch_chunks}")
        check_ocr_mode(self.ocr)
        if not self.max_file_mb > 0 or self.max_pdf_pages < 1:
            raise ConfigError(
                f"--max-file-mb must be > 0 and --max-pdf-pages >= 1, got {self.max_file_mb} and "
                f"{self.max_pdf_pages}"
            )

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)


@dataclass(frozen=True)
class IngestProgress:
    """One source finished: passed to the `progress` callback."""

    done: int
    total: int | None
    """Sources found so far in all; None while a crawl may still find more."""
    source: str
    status: Status
    chunks: int = 0


@dataclass
class IngestReport:
    """What an ingest did, source by source."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) for each source that could not be loaded; its stored version, if any, is kept."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for files met in folders but not loaded (hidden, unsupported extension), and crawled
    pages left out (robots.txt, not HTML, HTTP error, off-site redirect)."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(source, warning) for documents that loaded with a problem (e.g. image-only PDF pages)."""
    chunks: int = 0
    """Chunks embedded and written."""
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.embed_seconds if self.embed_seconds > 0 else 0.0


@dataclass
class _Pending:
    document: Document
    chunks: list[Chunk]
    status: Status


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


class _Run:
    """The state of one ingest: the report, the embedding queue and the progress counter."""

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        config: IngestConfig,
        progress: Callable[[IngestProgress], None] | None,
    ) -> None:
        self.store, self.embedder, self.config, self.progress = store, embedder, config, progress
        self.report = IngestReport()
        self.hashes = store.document_hashes()
        self.seen: set[str] = set()
        self.queue: list[_Pending] = []
        self.done = 0
        self.total: int | None = 0

    def tell(self, source: str, status: Status, chunks: int = 0) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(IngestProgress(self.done, self.total, source, status, chunks))

    def fail(self, source: str, reason: str) -> None:
        self.seen.add(source)
        self.report.failed.append((source, reason))
        self.tell(source, "failed")

    def offer(self, document: Document) -> None:
        """Queue a loaded document unless its stored version has the same hash."""
        self.seen.add(document.source)
        self.report.warnings += [(document.source, w) for w in document.warnings]
        stored = self.hashes.get(document.source)
        if stored == document.content_hash:
            self.report.unchanged.append(document.source)
            self.tell(document.source, "unchanged")
            return
        chunks = chunk_document(
            document,
            self.embedder.tokenizer,
            chunk_tokens=self.config.chunk_tokens,
            overlap_tokens=self.config.overlap_tokens,
        )
        self.queue.append(_Pending(document, chunks, "added" if stored is None else "updated"))
        if sum(len(p.chunks) for p in self.queue) >= self.config.batch_chunks:
            self.flush()

    def flush(self) -> None:
        """Embed every queued chunk at once, then write each document in its own transaction."""
        texts = [c.text for p in self.queue for c in p.chunks]
        start = time.perf_counter()
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)
        self.report.embed_seconds += time.perf_counter() - start
        offset = 0
        for pending in self.queue:
            n = len(pending.chunks)
            self.store.replace_document(pending.document, pending.chunks, vectors[offset : offset + n])
            offset += n
            self.report.chunks += n
            getattr(self.report, pending.status).append(pending.document.source)
            self.tell(pending.document.source, pending.status, n)
        self.queue.clear()


def _file_hash(path: Path) -> str | None:
    import hashlib

    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _ingest_files(run: _Run, files: Sequence[Path]) -> None:
    from llmlab.rag.loaders import load_path

    for path in files:
        source = str(path)
        if source in run.hashes and _file_hash(path) == run.hashes[source]:
            run.seen.add(source)
            run.report.unchanged.append(source)
            run.tell(source, "unchanged")
            continue
        try:
            document = load_path(
                path,
                pdf_password=run.config.pdf_password,
                max_bytes=run.config.max_bytes,
                max_pdf_pages=run.config.max_pdf_pages,
                ocr=run.config.ocr,
            )
        except DataError as e:
            run.fail(source, str(e))
            continue
        except MissingDependencyError as e:  # --ocr always without the ocr extra
            run.fail(source, f"{source}: {e}")
            continue
        except Exception as e:  # a loader bug must not cost the rest of the batch: report it with the file
            run.fail(source, f"{source}: unexpected {type(e).__name__} while loading: {e}")
            continue
        run.offer(document)


def _ingest_url(run: _Run, url: str) -> bool:
    """Crawl one URL; False if the crawl failed (its stored pages are then kept, never pruned)."""
    from llmlab.rag.loaders.web import crawl

    run.total = None
    cfg = run.config
    try:
        pages = crawl(
            url,
            max_depth=cfg.max_depth,
            max_pages=cfg.max_pages,
            delay=cfg.delay,
            max_bytes=cfg.max_bytes,
            on_skip=lambda page, reason: run.report.skipped.append((page, reason)),
        )
        for document in pages:
            run.offer(document)
    except DataError as e:
        run.fail(url, str(e))
        return False
    return True


def _walk(run: _Run, roots: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Files to load, and the prune scopes (folder prefixes, file paths) whose walk succeeded."""
    from llmlab.rag.loaders import iter_files

    files: list[Path] = []
    scopes: list[str] = []
    for root in roots:
        try:
            found = list(iter_files([root], run.config.include, run.config.exclude))
        except DataError as e:
            run.fail(str(Path(root).expanduser().absolute()), str(e))
            continue
        resolved = Path(root).expanduser().resolve()
        scopes.append(str(resolved) + os.sep if resolved.is_dir() else str(resolved))
        for item in found:
            if item.skipped is None:
                files.append(item.path)
            else:
                run.report.skipped.append((str(item.path), item.skipped))
    return files, scopes


def _in_scope(source: str, scopes: Iterable[str]) -> bool:
    return any(source == s or (s.endswith(("/", os.sep)) and source.startswith(s)) for s in scopes)


def _prune(run: _Run, scopes: list[str]) -> None:
    gone = [s for s in run.hashes if s not in run.seen and _in_scope(s, scopes)]
    if gone:
        run.store.remove_documents(gone)
    for source in gone:
        run.report.removed.append(source)
        run.tell(source, "removed")


def ingest(
    store: VectorStore,
    embedder: Embedder,
    sources: Iterable[str | os.PathLike[str]],
    config: IngestConfig | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
) -> IngestReport:
    """Bring `store` up to date with `sources` (files, folders, http(s) URLs).

    Raises:
        ConfigError: the store was built with another embedder (nothing is written).
    """
    config = config or IngestConfig()
    start = time.perf_counter()
    store.bind_embedder(embedder.name, embedder.dim)
    run = _Run(store, embedder, config, progress)
    values = [str(s) for s in sources]
    urls = [v for v in values if is_url(v)]
    files, scopes = _walk(run, [v for v in values if not is_url(v)])
    run.total = len(files)
    _ingest_files(run, files)
    for url in urls:
        if _ingest_url(run, url):
            scopes += [url, url if url.endswith("/") else url + "/"]
    run.flush()
    if config.prune:
        _prune(run, scopes)
    run.report.seconds = time.perf_counter() - start
    return run.report
