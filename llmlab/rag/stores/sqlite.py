"""The embedded RAG store: one SQLite file with documents, chunks, an FTS5 index (BM25) and the vectors.

- Text search is FTS5's BM25 (Robertson et al.; k1 = 1.2, b = 0.75 as built into FTS5) over chunk text,
  tokenized with `porter unicode61 remove_diacritics 2`; the query is built by text_query.py. Query terms
  that occur in more than half of the chunks are dropped (FTS5 clamps their IDF to 1e-6, so they cannot
  reorder chunks matching another term, yet scoring every chunk they match dominated query time).
- Vectors are float32 BLOBs in the `chunks` table, in the same file and the same transactions as the text.
  Dense search is exact: the vectors are read once into an in-memory (N, dim) matrix, reloaded when the file
  changes (this connection's writes, or `PRAGMA data_version` for other connections), and searched with one
  single-threaded matrix-vector product (`np.einsum`) and `argpartition`; recall@10 against brute force is
  1.0 by construction. PLATFORM.md measured this kind of scan at 9.5 ms for 100k x 384 vectors against
  40-50 ms for sqlite-vec's `vec0` scan, and the stdlib sqlite3 here cannot load extensions anyway. A
  threaded BLAS product was as fast on an idle CPU but stalled ~12 ms for a time slice whenever the CPU was
  busy (0.4 ms vs 12 ms at 10k chunks with other work running); a float16 matrix scanned by torch on one
  thread was ~20% faster than einsum at 100k but needed a float32 rescoring step. bench/rag.py measures
  latency at 10k and 100k chunks.
- Each document is written in one `BEGIN IMMEDIATE` transaction (WAL journal), so a process killed at any
  point leaves the previous committed state: tests/rag/test_ingest.py::test_sigkill_leaves_consistent_store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from llmlab.errors import ConfigError, DataError
from llmlab.rag.stores.protocol import Filters, StoreStats, check_embedder, check_vectors
from llmlab.rag.stores.text_query import fts5_match, query_terms
from llmlab.rag.types import Chunk, Document, cited_metadata

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    source_type TEXT NOT NULL,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    warnings TEXT NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    page INTEGER,
    heading_path TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE(document_id, chunk_index)
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


class SQLiteStore:
    """A `VectorStore` in one SQLite file (see the module docstring)."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._writes = 0
        try:
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._create_schema()
        except sqlite3.DatabaseError as e:
            raise DataError(
                f"cannot open the store: {e}; is it an llmlab SQLite store?", str(self.path)
            ) from e
        self._writes = 0
        self._cache_key: tuple[int, int] | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._doc_of = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._docs: list[tuple[int, str, str]] = []
        self._df: dict[str, int] = {}
        self._df_key: tuple[int, int] | None = None

    def _create_schema(self) -> None:
        with self._lock:
            # executescript commits any open transaction first, so it runs its own.
            self.conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        with self._transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise DataError(
                    f"store schema version {row[0]} is not supported (this llmlab reads {SCHEMA_VERSION}); "
                    "re-ingest into a new store",
                    str(self.path),
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            self._writes += 1

    # -- embedder identity -------------------------------------------------------------------------------

    def embedder(self) -> tuple[str, int] | None:
        with self._lock:
            rows = dict(self.conn.execute("SELECT key, value FROM meta WHERE key IN ('embedder', 'dim')"))
        if "embedder" not in rows:
            return None
        return rows["embedder"], int(rows["dim"])

    def bind_embedder(self, name: str, dim: int) -> None:
        with self._transaction():
            check_embedder(self.location, self.embedder(), name, dim)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('embedder', ?)", (name,))
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('dim', ?)", (str(dim),))

    # -- writes --------------------------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, str]:
        with self._lock:
            return dict(self.conn.execute("SELECT source, content_hash FROM documents"))

    def replace_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        stored = self.embedder()
        if stored is None:
            raise ConfigError(f"store {self.location} has no embedder recorded; call bind_embedder first")
        vectors = check_vectors(chunks, vectors, stored[1])
        with self._transaction():
            self._delete_sources([document.source])
            cursor = self.conn.execute(
                "INSERT INTO documents(source, source_type, title, content_hash, metadata, warnings, ingested_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    document.source,
                    document.source_type,
                    document.title,
                    document.content_hash,
                    json.dumps(document.metadata),
                    json.dumps(document.warnings),
                    time.time(),
                ),
            )
            doc_id = cursor.lastrowid
            self.conn.executemany(
                'INSERT INTO chunks(document_id, chunk_index, text, page, heading_path, start, "end", vector)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (doc_id, i, c.text, c.page, json.dumps(list(c.heading_path)), c.start, c.end, v.tobytes())
                    for i, (c, v) in enumerate(zip(chunks, vectors, strict=True))
                ],
            )

    def _delete_sources(self, sources: Sequence[str]) -> int:
        removed = 0
        for source in sources:
            row = self.conn.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
            if row is not None:
                self.conn.execute("DELETE FROM chunks WHERE document_id = ?", (row[0],))
                self.conn.execute("DELETE FROM documents WHERE id = ?", (row[0],))
                removed += 1
        return removed

    def remove_documents(self, sources: Sequence[str]) -> int:
        with self._transaction():
            return self._delete_sources(sources)

    # -- reads ---------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload the in-memory vectors and document list if the file changed since the last load."""
        key = (self.conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if key == self._cache_key:
            return
        rows = self.conn.execute("SELECT id, document_id, vector FROM chunks ORDER BY id").fetchall()
        stored = self.embedder()
        dim = stored[1] if stored else 0
        self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        self._doc_of = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        self._matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        self._docs = self.conn.execute("SELECT id, source, source_type FROM documents").fetchall()
        self._cache_key = key

    def _allowed_documents(self, filters: Filters | None) -> list[int] | None:
        """Ids of the documents that pass `filters`, or None when nothing is filtered out."""
        if filters is None or filters.empty:
            return None
        return [doc_id for doc_id, source, kind in self._docs if filters.matches(source, kind)]

    def dense_search(
        self, vector: np.ndarray, top_k: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            self._refresh()
            allowed = self._allowed_documents(filters)
            ids, doc_of, matrix = self._ids, self._doc_of, self._matrix
        if len(ids) == 0 or top_k <= 0:
            return []
        if vector.shape[0] != matrix.shape[1]:
            raise ConfigError(
                f"query vector has dimension {vector.shape[0]}; the store holds {matrix.shape[1]}"
            )
        # einsum runs on one core: a threaded BLAS gemv stalls for a time slice whenever the CPU is busy.
        scores = np.einsum("ij,j->i", matrix, vector)  # (N,)
        if allowed is not None:
            keep = np.flatnonzero(np.isin(doc_of, allowed))
            ids, scores = ids[keep], scores[keep]
        k = min(top_k, len(scores))
        if k == 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.lexsort((ids[best], -scores[best]))]
        return [(int(ids[i]), float(scores[i])) for i in best]

    def text_search(self, query: str, top_k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        if top_k <= 0:
            return []
        with self._lock:
            self._refresh()
            terms = self._informative(query_terms(query))
            if not terms:
                return []
            sql = "SELECT chunks_fts.rowid, bm25(chunks_fts) AS s FROM chunks_fts"
            params: list[object] = [fts5_match(terms)]
            allowed = self._allowed_documents(filters)
            if allowed is not None:
                sql += " JOIN chunks c ON c.id = chunks_fts.rowid"
                sql += " WHERE chunks_fts MATCH ? AND c.document_id IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(allowed))
            else:
                sql += " WHERE chunks_fts MATCH ?"
            rows = self.conn.execute(sql + " ORDER BY s LIMIT ?", [*params, top_k]).fetchall()
        # FTS5's bm25() is negated so that ORDER BY ascending ranks best first; flip it back.
        return [(int(r[0]), -float(r[1])) for r in rows]

    def dense_scores(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            self._refresh()
            all_ids, matrix = self._ids, self._matrix
        wanted = np.asarray(sorted(set(int(i) for i in ids)), dtype=np.int64)
        if len(all_ids) == 0 or len(wanted) == 0:
            return {}
        rows = np.searchsorted(all_ids, wanted).clip(0, len(all_ids) - 1)
        found = all_ids[rows] == wanted
        scores = np.einsum("ij,j->i", matrix[rows[found]], vector)  # (F,)
        return {int(i): float(s) for i, s in zip(wanted[found], scores, strict=True)}

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        with self._lock:
            self._refresh()
            all_ids, matrix = self._ids, self._matrix
        wanted = np.asarray(sorted(set(int(i) for i in ids)), dtype=np.int64)
        if len(all_ids) == 0 or len(wanted) == 0:
            return {}
        rows = np.searchsorted(all_ids, wanted).clip(0, len(all_ids) - 1)
        return {int(all_ids[r]): matrix[r].copy() for r in rows if all_ids[r] in wanted}

    def _informative(self, terms: list[str]) -> list[str]:
        """Drop terms found in more than half of the chunks (keeping the rarest if all are that common).

        FTS5's BM25 clamps the IDF of such terms to 1e-6, so they cannot change the order of chunks that match
        another term; but every chunk they match must be scored, which made common words cost ~150 ms per
        query at 100k chunks. Document frequencies are counted once per term and store version.
        """
        counts = [self._document_frequency(t) for t in terms]
        half = len(self._ids) / 2
        kept = [t for t, n in zip(terms, counts, strict=True) if 0 < n <= half]
        if kept or not any(counts):
            return kept
        return [min((n, t) for t, n in zip(terms, counts, strict=True) if n > 0)[1]]

    def _document_frequency(self, term: str) -> int:
        if self._df_key != self._cache_key:
            self._df.clear()
            self._df_key = self._cache_key
        if term not in self._df:
            sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
            self._df[term] = self.conn.execute(sql, (fts5_match([term]),)).fetchone()[0]
        return self._df[term]

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        with self._lock:
            rows = self.conn.execute(
                'SELECT c.id, c.text, d.source, d.source_type, c.chunk_index, c.page, c.heading_path, c.start, c."end",'
                " d.title, d.metadata FROM chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE c.id IN (SELECT value FROM json_each(?))",
                (json.dumps([int(i) for i in ids]),),
            ).fetchall()
        return {
            r[0]: Chunk(
                text=r[1],
                source=r[2],
                source_type=r[3],
                chunk_index=r[4],
                page=r[5],
                heading_path=tuple(json.loads(r[6])),
                start=r[7],
                end=r[8],
                title=r[9],
                metadata=cited_metadata(json.loads(r[10])),
            )
            for r in rows
        }

    def stats(self) -> StoreStats:
        with self._lock:
            documents = self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            by_type = dict(
                self.conn.execute("SELECT source_type, count(*) FROM documents GROUP BY 1 ORDER BY 1")
            )
        stored = self.embedder()
        return StoreStats(
            location=self.location,
            backend=self.backend,
            documents=documents,
            chunks=chunks,
            embedder=stored[0] if stored else None,
            dim=stored[1] if stored else None,
            by_type=by_type,
        )

    def close(self) -> None:
        with self._lock:
            self.conn.close()
