"""Retrieval evaluation on the test collections of bench/data/ir: shared by bench/rag.py and bench/fusion_fit.py.

A collection's documents (title + text, as BEIR's dense models read them) go into a SQLite store with the
default chunking (200 tokens, 40 overlap) and the default embedder. For each query, both modes' top
`depth` chunks are taken with their scores, and each chunk that only one mode returned is scored by the
other too (the store's dense_scores; BM25 scores from the full-text ranking read to BM25_DEPTH, as search()
does), so that fusions can be compared offline on the same candidates. A chunk ranking becomes a document ranking by each document's best chunk (first occurrence),
and nDCG@10 / recall@100 come from llmlab.evaluation.metrics.retrieval (trec_eval's definitions, graded gain,
as BEIR reports them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from public_data import data_dir

DATA = data_dir("ir", must_exist=False)  # built by bench/data/ir/build.py
COLLECTIONS = ("nfcorpus", "cranfield", "cisi", "squad-dev")


@dataclass
class QueryCandidates:
    """Both modes' ranked chunks for one query, with the other mode's score for each (fill-ins)."""

    dense: list[tuple[int, float]]
    bm25: list[tuple[int, float]]
    dense_fill: dict[int, float]
    bm25_fill: dict[int, float]


@dataclass
class Prepared:
    name: str
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    doc_of: dict[int, str]
    """chunk id -> document id."""
    candidates: dict[str, QueryCandidates]
    chunks: int
    ingest_seconds: float
    store_path: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Prepared:
        """The inverse of `to_json` (JSON keys are strings: chunk ids become ints again)."""
        raw = json.loads(text)

        def ints(d: dict) -> dict[int, float]:
            return {int(k): v for k, v in d.items()}

        def pairs(rows: list) -> list[tuple[int, float]]:
            return [(int(i), float(v)) for i, v in rows]

        raw["doc_of"] = {int(k): v for k, v in raw["doc_of"].items()}
        raw["candidates"] = {
            q: QueryCandidates(
                pairs(c["dense"]), pairs(c["bm25"]), ints(c["dense_fill"]), ints(c["bm25_fill"])
            )
            for q, c in raw["candidates"].items()
        }
        return cls(**raw)


def open_collection_store(name: str, folder: Path, embedder, cache: Path):
    """A SQLite store holding the collection (built once per cache folder and embedder)."""
    from llmlab.evaluation.beir import load_beir
    from llmlab.rag.chunking import chunk_document
    from llmlab.rag.stores.sqlite import SQLiteStore
    from llmlab.rag.types import Document, Unit

    corpus = load_beir(DATA / name, "test").corpus
    path = cache / f"{name}-{embedder.name.replace('/', '_')}.sqlite"
    store = SQLiteStore(path)
    if store.stats().documents == len(corpus):
        return store, 0.0
    store.bind_embedder(embedder.name, embedder.dim)
    start = time.perf_counter()
    batch: list[tuple[Document, list]] = []

    def flush() -> None:
        texts = [c.text for _, chunks in batch for c in chunks]
        vectors = embedder.embed(texts)
        offset = 0
        for document, chunks in batch:
            store.replace_document(document, chunks, vectors[offset : offset + len(chunks)])
            offset += len(chunks)
        batch.clear()

    for doc_id, (title, text) in corpus.items():
        body = f"{title}\n\n{text}" if title and not text.startswith(title) else text
        digest = hashlib.sha256(body.encode()).hexdigest()
        document = Document(f"{name}/{doc_id}", "text", title or doc_id, [Unit(body)], digest)
        batch.append((document, chunk_document(document, embedder.tokenizer)))
        if sum(len(c) for _, c in batch) >= 256:
            flush()
    if batch:
        flush()
    return store, time.perf_counter() - start


def prepare(name: str, split: str, embedder, cache: Path, depth: int = 300) -> Prepared:
    """Candidates for every query of one split (cached in `cache` as JSON)."""
    from llmlab.evaluation.beir import load_beir
    from llmlab.rag.retrieval import BM25_DEPTH

    collection = load_beir(DATA / name, split)
    cached = cache / f"{name}-{split}-{depth}-{embedder.name.replace('/', '_')}.json"
    if cached.exists():
        prepared = Prepared.from_json(cached.read_text())
        if prepared.queries == collection.queries and len(set(prepared.doc_of.values())) == len(
            collection.corpus
        ):
            return prepared
    store, seconds = open_collection_store(name, DATA / name, embedder, cache)
    ids = [i for i, _ in store.dense_search(np.zeros(embedder.dim, np.float32), store.stats().chunks)]
    doc_of = {i: c.source.split("/", 1)[1] for i, c in store.chunks(ids).items()}
    vectors = embedder.embed(list(collection.queries.values()))
    candidates = {}
    for (qid, text), vector in zip(collection.queries.items(), vectors, strict=True):
        dense = store.dense_search(vector, depth)
        deep = store.text_search(text, max(depth, BM25_DEPTH))  # as search() reads it
        bm25, deep_scores = deep[:depth], dict(deep)
        floor = deep[-1][1] if len(deep) >= max(depth, BM25_DEPTH) else 0.0
        dense_ids, bm25_ids = {i for i, _ in dense}, {i for i, _ in bm25}
        candidates[qid] = QueryCandidates(
            dense,
            bm25,
            store.dense_scores(vector, sorted(bm25_ids - dense_ids)),
            {i: deep_scores.get(i, floor) for i in dense_ids - bm25_ids},
        )
    prepared = Prepared(
        name,
        split,
        collection.queries,
        collection.qrels,
        doc_of,
        candidates,
        len(doc_of),
        seconds,
        store.location,
    )
    store.close()
    cached.write_text(prepared.to_json())
    return prepared


Fusion = Callable[[QueryCandidates, int], list[tuple[int, float]]]
"""(candidates, pool) -> fused chunk ranking, best first; `pool` is how many of each list the search keeps."""

_VECTORS: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_CURRENT: list[str] = [""]


def chunk_vectors(store_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted chunk ids, their vectors) of a collection's store, loaded once."""
    if store_path not in _VECTORS:
        import sqlite3

        rows = sqlite3.connect(store_path).execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        _VECTORS[store_path] = ids, np.stack([np.frombuffer(r[1], np.float32) for r in rows])
    return _VECTORS[store_path]


def _feedback_scores(candidates: list[int]):
    """What the store computes for hybrid_fuse: cosine of each candidate to the centroid of the top keys."""
    ids, matrix = chunk_vectors(_CURRENT[0])

    def scores(top: list[int]) -> dict[int, float]:
        centroid = matrix[np.searchsorted(ids, top)].mean(0)
        centroid /= np.linalg.norm(centroid)
        rows = np.searchsorted(ids, candidates)
        return dict(zip(candidates, (matrix[rows] @ centroid).tolist(), strict=True))

    return scores


def document_run(prepared: Prepared, fusion: Fusion, pool: int) -> dict[str, dict[str, float]]:
    """query id -> document id -> score (higher is better) for the fused chunk rankings."""
    _CURRENT[0] = prepared.store_path
    run = {}
    for qid, cands in prepared.candidates.items():
        ranked: dict[str, None] = {}
        for chunk_id, _ in fusion(cands, pool):
            ranked.setdefault(prepared.doc_of[chunk_id], None)
        run[qid] = {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}
    return run


def evaluate(prepared: Prepared, fusion: Fusion, pool: int = 300) -> dict[str, float]:
    """Mean nDCG@10 and recall@100 (fractions) of one fusion on one prepared split."""
    from llmlab.evaluation.metrics.retrieval import evaluate_run

    scores = evaluate_run(document_run(prepared, fusion, pool), prepared.qrels, ks=(10, 100))
    return {"ndcg@10": scores["ndcg@10"], "recall@100": scores["recall@100"]}


def per_query_ndcg(prepared: Prepared, fusion: Fusion, pool: int = 300) -> dict[str, float]:
    from llmlab.evaluation.metrics.retrieval import retrieval_scores

    return retrieval_scores(document_run(prepared, fusion, pool), prepared.qrels, ks=(10,))["ndcg@10"]


# -- the fusions compared ------------------------------------------------------------------------------------


def only(mode: str) -> Fusion:
    return lambda c, pool: (c.dense if mode == "dense" else c.bm25)[:pool]


def rrf(k: int = 60, weights: Sequence[float] = (1.0, 1.0)) -> Fusion:
    from llmlab.rag.fusion import rrf_fuse

    def fuse(c: QueryCandidates, pool: int) -> list[tuple[int, float]]:
        return rrf_fuse([[i for i, _ in c.dense[:pool]], [i for i, _ in c.bm25[:pool]]], k, weights)

    return fuse


def convex(
    normalizer: str,
    dense_weight: float,
    depth: int = 50,
    fill: bool = True,
    feedback: float = 0.0,
    docs: int = 3,
) -> Fusion:
    """Convex combination (and dense pseudo-relevance feedback) through llmlab.rag.fusion.hybrid_fuse."""
    from llmlab.rag.fusion import hybrid_fuse

    def fuse(c: QueryCandidates, pool: int) -> list[tuple[int, float]]:
        dense, bm25 = c.dense[:pool], c.bm25[:pool]
        dense_ids, bm25_ids = {i for i, _ in dense}, {i for i, _ in bm25}
        fills = None
        if fill:
            # scores of the full candidate lists stand in for a store query at this pool size
            dense_all, bm25_all = dict(c.dense) | c.dense_fill, dict(c.bm25) | c.bm25_fill
            fills = (
                {i: dense_all[i] for i in bm25_ids - dense_ids if i in dense_all},
                {i: bm25_all.get(i, 0.0) for i in dense_ids - bm25_ids},
            )
        return hybrid_fuse(
            dense,
            bm25,
            (dense_weight, 1 - dense_weight),
            normalizer,
            depth=depth,
            fill=fills,
            feedback=feedback,
            feedback_docs=docs,
            feedback_scores=_feedback_scores(sorted(dense_ids | bm25_ids)),
        )

    return fuse
