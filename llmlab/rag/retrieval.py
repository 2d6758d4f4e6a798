"""Retrieval: dense (cosine), BM25 (full text) and hybrid by reciprocal-rank fusion, with top-k and filters.

Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):

    RRF(d) = sum_m  w_m / (k + rank_m(d))          rank_m(d): 1-based rank of d in mode m's list

A document missing from one list gets nothing from it. k = 60 is the paper's constant (it damps the weight of
the very top ranks so that one list cannot dominate); both modes weigh 1 by default. Each mode contributes
its best `candidates` chunks (default max(50, 5 * top_k)). Ties in RRF score are broken by the dense rank,
then the BM25 rank. bench/rag.py reports nDCG@10 and recall@10 of the three modes on bench/data/retrieval.
Hand-computed case: tests/rag/test_retrieval.py::test_rrf_hand_computed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from llmlab.errors import ConfigError
from llmlab.rag.stores.protocol import Filters, VectorStore
from llmlab.rag.types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
RRF_K = 60

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SearchConfig:
    """How a query is answered from the store."""

    mode: str = "hybrid"
    """hybrid (BM25 + dense by reciprocal-rank fusion), dense, or bm25."""
    top_k: int = 5
    """How many chunks to return."""
    rrf_k: int = RRF_K
    """The k in 1 / (k + rank) of reciprocal-rank fusion; larger flattens the weight of top ranks."""
    dense_weight: float = 1.0
    """Weight of the dense ranking in hybrid fusion."""
    bm25_weight: float = 1.0
    """Weight of the BM25 ranking in hybrid fusion."""
    candidates: int | None = None
    """Chunks each mode contributes to the fusion; default max(50, 5 * top_k)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {self.top_k}")
        if self.rrf_k < 0:
            raise ConfigError(f"--rrf-k must be >= 0, got {self.rrf_k}")
        if self.dense_weight < 0 or self.bm25_weight < 0:
            raise ConfigError("--dense-weight and --bm25-weight must be >= 0")
        if self.candidates is not None and self.candidates < self.top_k:
            raise ConfigError(f"--candidates must be at least --top-k ({self.top_k}), got {self.candidates}")

    @property
    def pool(self) -> int:
        return self.candidates or max(50, 5 * self.top_k)


def rrf_fuse(
    rankings: Sequence[Sequence[K]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Fuse ranked lists (best first) into one by reciprocal-rank fusion; returns (key, score), best first.

    Ties are broken by the best rank in the earliest list that has the key, so the result is deterministic.
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ConfigError(f"got {len(weights)} weights for {len(rankings)} rankings")
    scores: dict[K, float] = {}
    first_seen: dict[K, tuple[int, int]] = {}
    for list_index, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            first_seen.setdefault(key, (list_index, rank))
    return sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))


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
        Hits best first, rank 1-based; `score` is the fused RRF score (hybrid), cosine (dense) or the
        full-text score (bm25); `scores` holds every mode's score and 1-based rank for the chunk.
    """
    config = config or SearchConfig()
    if not query.strip():
        raise ConfigError("the query is empty; give some words to search for")
    dense: list[tuple[int, float]] = []
    bm25: list[tuple[int, float]] = []
    pool = config.top_k if config.mode != "hybrid" else config.pool
    if config.mode in ("hybrid", "dense"):
        if embed is None:
            raise ConfigError(
                f"mode {config.mode!r} needs an embedder; use --mode bm25 to search without one"
            )
        dense = store.dense_search(embed([query])[0], pool, filters)
    if config.mode in ("hybrid", "bm25"):
        bm25 = store.text_search(query, pool, filters)
    if config.mode == "dense":
        ranked = dense
    elif config.mode == "bm25":
        ranked = bm25
    else:
        fused = rrf_fuse(
            [[i for i, _ in dense], [i for i, _ in bm25]],
            config.rrf_k,
            [config.dense_weight, config.bm25_weight],
        )
        ranked = fused[: config.top_k]
    return _hits(store, ranked[: config.top_k], dense, bm25)


def _hits(
    store: VectorStore,
    ranked: list[tuple[int, float]],
    dense: list[tuple[int, float]],
    bm25: list[tuple[int, float]],
) -> list[Hit]:
    details: dict[int, dict[str, float]] = {}
    for name, results in (("dense", dense), ("bm25", bm25)):
        for rank, (chunk_id, score) in enumerate(results, start=1):
            details.setdefault(chunk_id, {})[name] = score
            details[chunk_id][f"{name}_rank"] = float(rank)
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
