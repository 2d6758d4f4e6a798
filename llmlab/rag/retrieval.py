"""Retrieval: dense (cosine), BM25 (full text) and hybrid (both, fused), with top-k and filters.

Hybrid search takes each mode's best `candidates` chunks (default max(50, 5 * top_k)), scores every chunk
that only one mode returned with the other mode too (the store's dense_scores; BM25 scores from the same
full-text query read to BM25_DEPTH), and fuses them (llmlab/rag/fusion.py):

    default (fusion="zscore", feedback=FEEDBACK):   CC(d) = w_dense * z_dense(d) + w_bm25 * z_bm25(d)
        z: each mode's scores standardised by the mean and spread of its top 50 for this query; then dense
        pseudo-relevance feedback: every candidate's cosine to the centroid of the fused top 3 is added to its
        dense score (times `feedback`) and the two modes are fused again.
    fusion="minmax": the same with min-max normalisation.
    fusion="rrf": reciprocal-rank fusion, sum_m w_m / (k + rank_m(d)), k = 60 (Cormack et al., 2009).

The default and its weights were chosen on training queries of public test collections by
bench/fusion_fit.py and are measured on their test queries by bench/rag.py (docs/rag-store.md).
Ties are broken by the dense rank, then the BM25 rank.
Hand-computed cases: tests/rag/test_retrieval.py, tests/rag/test_fusion.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmlab.errors import ConfigError
from llmlab.rag.fusion import NORMALIZERS, RRF_K, hybrid_fuse, rrf_fuse
from llmlab.rag.stores.protocol import Filters, VectorStore
from llmlab.rag.types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
FUSIONS: tuple[str, ...] = ("rrf", *NORMALIZERS)
FEEDBACK = 0.5
"""Default weight of dense pseudo-relevance feedback in hybrid search (bench/fusion_fit.py)."""
BM25_DEPTH = 1000
"""How deep hybrid search reads BM25's ranking to score dense candidates that BM25 ranked lower: FTS5 and
PostgreSQL score every matching chunk to sort them anyway, so a deeper LIMIT costs little."""

__all__ = ["FUSIONS", "MODES", "RRF_K", "SearchConfig", "rrf_fuse", "search"]


@dataclass(frozen=True)
class SearchConfig:
    """How a query is answered from the store."""

    mode: str = "hybrid"
    """hybrid (BM25 + dense, fused), dense, or bm25."""
    top_k: int = 5
    """How many chunks to return (`--chunks` on the command line, where --top-k is always sampling's)."""
    fusion: str = "zscore"
    """How hybrid search fuses the modes: zscore or minmax (normalised scores, weighted sum), or rrf
    (reciprocal ranks)."""
    dense_weight: float = 1.0
    """Weight of the dense mode in hybrid fusion."""
    bm25_weight: float = 1.0
    """Weight of the BM25 mode in hybrid fusion."""
    feedback: float = FEEDBACK
    """Weight of dense pseudo-relevance feedback (similarity to the top fused chunks) in zscore/minmax
    fusion; 0 turns it off."""
    feedback_docs: int = 3
    """How many top fused chunks the feedback uses."""
    rrf_k: int = RRF_K
    """The k in 1 / (k + rank) of --fusion rrf; larger flattens the weight of top ranks."""
    candidates: int | None = None
    """Chunks each mode contributes to the fusion; default max(50, 5 * --chunks)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.top_k < 1:
            raise ConfigError(f"--chunks (top_k) must be at least 1, got {self.top_k}")
        if self.rrf_k < 0:
            raise ConfigError(f"--rrf-k must be >= 0, got {self.rrf_k}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"--fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.dense_weight < 0 or self.bm25_weight < 0 or self.dense_weight + self.bm25_weight == 0:
            raise ConfigError(
                f"--dense-weight and --bm25-weight must be >= 0 and not both 0, got {self.dense_weight} and "
                f"{self.bm25_weight}"
            )
        if self.feedback < 0 or self.feedback_docs < 1:
            raise ConfigError(
                f"--feedback must be >= 0 and --feedback-docs >= 1, got {self.feedback} and {self.feedback_docs}"
            )
        if self.candidates is not None and self.candidates < self.top_k:
            raise ConfigError(
                f"--candidates must be at least --chunks (top_k, {self.top_k}), got {self.candidates}"
            )

    @property
    def pool(self) -> int:
        return self.candidates or max(50, 5 * self.top_k)


def search(
    store: VectorStore,
    query: str,
    embed: Callable[[Sequence[str]], np.ndarray] | None,
    config: SearchConfig | None = None,
    filters: Filters | None = None,
) -> list[Hit]:
    """The top chunks for `query` from `store`.

    Args:
        embed: the embedder's `embed` (texts -> (N, dim) unit vectors); not needed for mode bm25.

    Returns:
        Hits best first, rank 1-based; `score` is the fused score (hybrid), cosine (dense) or the
        full-text score (bm25); `scores` holds each mode's score for the chunk and, where that mode
        returned it, its 1-based rank.
    """
    config = config or SearchConfig()
    if not query.strip():
        raise ConfigError("the query is empty; give some words to search for")
    dense: list[tuple[int, float]] = []
    bm25: list[tuple[int, float]] = []
    deep: list[tuple[int, float]] = []
    fill: tuple[dict[int, float], dict[int, float]] = ({}, {})
    pool = config.top_k if config.mode != "hybrid" else config.pool
    vector = None
    if config.mode in ("hybrid", "dense"):
        if embed is None:
            raise ConfigError(
                f"mode {config.mode!r} needs an embedder; use --mode bm25 to search without one"
            )
        vector = embed([query])[0]
        dense = store.dense_search(vector, pool, filters)
    if config.mode == "bm25" or (config.mode == "hybrid" and config.fusion == "rrf"):
        bm25 = store.text_search(query, pool, filters)
    elif config.mode == "hybrid":  # deeper, for the BM25 scores of dense candidates (one query either way)
        deep = store.text_search(query, max(pool, BM25_DEPTH), filters)
        bm25 = deep[:pool]
    if config.mode == "dense":
        ranked = dense
    elif config.mode == "bm25":
        ranked = bm25
    elif config.fusion == "rrf":
        ranked = rrf_fuse(
            [[i for i, _ in dense], [i for i, _ in bm25]],
            config.rrf_k,
            [config.dense_weight, config.bm25_weight],
        )
    else:
        assert vector is not None
        ranked, fill = _fuse_scores(store, vector, dense, deep, config)
    return _hits(store, ranked[: config.top_k], dense, bm25, fill)


def _fuse_scores(
    store: VectorStore,
    vector: np.ndarray,
    dense: list[tuple[int, float]],
    deep: list[tuple[int, float]],
    config: SearchConfig,
) -> tuple[list[tuple[int, float]], tuple[dict[int, float], dict[int, float]]]:
    """Score-normalised fusion with the other mode's scores filled in, and dense pseudo-relevance feedback.

    `deep` is BM25's list to BM25_DEPTH: its first `pool` chunks are BM25's candidates, the rest give the
    BM25 score of dense candidates below them; a chunk it lacks scores 0 (it matches no query word) unless
    the list is full, when it gets the list's last score (an upper bound).
    """
    bm25 = deep[: config.pool]
    deep_bm25 = dict(deep)
    bm25_floor = deep[-1][1] if len(deep) >= max(config.pool, BM25_DEPTH) else 0.0
    dense_ids, bm25_ids = {i for i, _ in dense}, {i for i, _ in bm25}
    fill = (
        store.dense_scores(vector, sorted(bm25_ids - dense_ids)),
        {i: deep_bm25.get(i, bm25_floor) for i in dense_ids - bm25_ids},
    )
    candidates = sorted(dense_ids | bm25_ids)

    def feedback_scores(top: list[int]) -> dict[int, float]:
        vectors = list(store.vectors(top).values())
        centroid = np.mean(vectors, axis=0) if vectors else np.zeros_like(vector)
        norm = float(np.linalg.norm(centroid))
        return store.dense_scores(centroid / norm, candidates) if norm > 0 else {}

    fused = hybrid_fuse(
        dense,
        bm25,
        (config.dense_weight, config.bm25_weight),
        config.fusion,
        fill=fill,
        feedback=config.feedback,
        feedback_docs=config.feedback_docs,
        feedback_scores=feedback_scores,
    )
    return fused, fill


def _hits(
    store: VectorStore,
    ranked: list[tuple[int, float]],
    dense: list[tuple[int, float]],
    bm25: list[tuple[int, float]],
    fill: tuple[dict[int, float], dict[int, float]] = ({}, {}),
) -> list[Hit]:
    details: dict[int, dict[str, float]] = {}
    for name, results, extra in (("dense", dense, fill[0]), ("bm25", bm25, fill[1])):
        for rank, (chunk_id, score) in enumerate(results, start=1):
            details.setdefault(chunk_id, {})[name] = score
            details[chunk_id][f"{name}_rank"] = float(rank)
        for chunk_id, score in extra.items():
            details.setdefault(chunk_id, {})[name] = score
    chunks = store.chunks([chunk_id for chunk_id, _ in ranked])
    return [
        Hit(
            chunk=chunks[chunk_id],
            score=score,
            rank=rank,
            chunk_id=chunk_id,
            scores=details.get(chunk_id, {}),
        )
        for rank, (chunk_id, score) in enumerate(ranked, start=1)
        if chunk_id in chunks
    ]
