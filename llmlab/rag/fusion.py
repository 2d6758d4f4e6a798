"""Fusing a dense and a BM25 ranking into one: reciprocal ranks, or normalised scores in a convex combination.

Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):

    RRF(d) = sum_m  w_m / (k + rank_m(d))           k = 60; a document missing from list m gets nothing from it

Convex combination of normalised scores (Bruch, Gai & Ingber, 2023, "An Analysis of Fusion Functions for
Hybrid Retrieval", ACM TOIS 42(1), eq. 2 and section 4):

    CC(d) = w_dense * norm_dense(s_dense(d)) + w_bm25 * norm_bm25(s_bm25(d))

    minmax:  norm(s) = (s - min_R) / (max_R - min_R)
    zscore:  norm(s) = (s - mean_R) / std_R         (distribution-based score fusion, DBSF, maps each mode by
                                                      (s - (mean - 3 std)) / (6 std): for a convex combination
                                                      that is z / 6 + 1/2 in both modes, so the same ranking)

Pseudo-relevance feedback on the dense side (Rocchio, 1971; for dense retrievers: Li et al., 2023, "Pseudo
Relevance Feedback with Deep Language Models and Dense Retrievers", ACM TOIS 41(3)), after a first fusion:

    c = unit(mean of the vectors of the fused top `feedback_docs` chunks)
    s_dense'(d) = cos(q, d) + feedback * cos(c, d)            then CC again with s_dense' for s_dense

The feedback chunks come from the fused ranking, not from dense alone, so lexical evidence chooses them too.
Li et al. move the query vector (q' = a q + b c); scoring with both is the same up to the weights, and
leaves the dense list's candidates as they are (no second search).

where R, the reference of each mode, is that mode's top `depth` scores for this query (default 50): fixed
whatever the caller's top_k, so that a search for 5 chunks and one for 500 rank their first chunks alike.
Bruch et al. normalise over the whole retrieved list; a fixed depth is our departure. A chunk that one mode
did not return is scored by that mode anyway when the caller gives `fill` scores (the stores compute BM25 and
cosine for given chunk ids); without them it gets the lowest score of that mode's list.

Which fusion is the default, and its weights, was chosen by bench/fusion_fit.py on training queries only and
measured on held-out test collections by bench/rag.py (docs/rag-store.md shows the table).
Hand-computed cases: tests/rag/test_fusion.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from llmlab.errors import ConfigError

K = TypeVar("K", bound=Hashable)
RRF_K = 60
NORM_DEPTH = 50


def _minmax(reference: Sequence[float]) -> Callable[[float], float]:
    lo, hi = min(reference), max(reference)
    span = hi - lo
    return (lambda s: (s - lo) / span) if span > 0 else (lambda s: 1.0 if s >= hi else 0.0)


def _zscore(reference: Sequence[float]) -> Callable[[float], float]:
    mean = math.fsum(reference) / len(reference)
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in reference) / len(reference))
    return (lambda s: (s - mean) / std) if std > 0 else (lambda s: 0.0 if s >= mean else -1.0)


NORMALIZERS: dict[str, Callable[[Sequence[float]], Callable[[float], float]]] = {
    "minmax": _minmax,
    "zscore": _zscore,
}
"""name -> (reference scores -> the normalising function for this mode and query)."""


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


def score_fuse(
    lists: Sequence[Sequence[tuple[K, float]]],
    weights: Sequence[float],
    normalizer: str = "minmax",
    *,
    depth: int = NORM_DEPTH,
    fill: Sequence[Mapping[K, float]] | None = None,
) -> list[tuple[K, float]]:
    """Convex combination of normalised scores over the union of `lists` (each (key, score), best first).

    Args:
        weights: one per list (e.g. dense 0.6, BM25 0.4).
        normalizer: a key of NORMALIZERS.
        depth: how many of each list's top scores set its normalisation.
        fill: per list, scores of keys that list did not return (computed by the store); keys with no
            fill get the list's lowest score (below it, when all its scores are equal).

    Returns:
        (key, fused score), best first; ties broken by the best rank in the earliest list holding the key.
    """
    if normalizer not in NORMALIZERS:
        raise ConfigError(f"--fusion normalizer must be one of {', '.join(NORMALIZERS)}, got {normalizer!r}")
    if len(weights) != len(lists) or (fill is not None and len(fill) != len(lists)):
        raise ConfigError(f"got {len(weights)} weights for {len(lists)} ranked lists")
    if depth < 1:
        raise ConfigError(f"the normalisation depth must be at least 1, got {depth}")
    first_seen: dict[K, tuple[int, int]] = {}
    for list_index, ranked in enumerate(lists):
        for rank, (key, _) in enumerate(ranked, start=1):
            first_seen.setdefault(key, (list_index, rank))
    fused = dict.fromkeys(first_seen, 0.0)
    for list_index, (ranked, weight) in enumerate(zip(lists, weights, strict=True)):
        if not ranked or weight == 0:
            continue
        reference = [s for _, s in ranked[:depth]]
        norm = NORMALIZERS[normalizer](reference)
        scores = dict(ranked)
        extra = fill[list_index] if fill is not None else {}
        floor = min(scores.values())
        if floor == max(scores.values()):  # one distinct score: put keys the list lacks below it
            floor -= 1.0
        for key in fused:
            raw = scores.get(key)
            if raw is None:
                raw = extra.get(key, floor)
            fused[key] += weight * norm(raw)
    return sorted(fused.items(), key=lambda item: (-item[1], first_seen[item[0]]))


def hybrid_fuse(
    dense: Sequence[tuple[K, float]],
    bm25: Sequence[tuple[K, float]],
    weights: tuple[float, float],
    normalizer: str = "zscore",
    *,
    depth: int = NORM_DEPTH,
    fill: tuple[Mapping[K, float], Mapping[K, float]] | None = None,
    feedback: float = 0.0,
    feedback_docs: int = 3,
    feedback_scores: Callable[[list[K]], Mapping[K, float]] | None = None,
) -> list[tuple[K, float]]:
    """Convex combination of the dense and BM25 lists, then (feedback > 0) dense pseudo-relevance feedback.

    Args:
        weights: (dense, BM25).
        fill: (dense scores of chunks only BM25 returned, BM25 scores of chunks only dense returned).
        feedback_scores: given the fused top `feedback_docs` keys, the cosine of every candidate (both
            lists and their fills) to the unit centroid of those keys' vectors (the store computes it).

    Returns:
        (key, fused score), best first.
    """
    fills = list(fill) if fill is not None else [{}, {}]
    fused = score_fuse([dense, bm25], weights, normalizer, depth=depth, fill=fills)
    if feedback <= 0 or feedback_scores is None or not fused:
        return fused
    extra = feedback_scores([key for key, _ in fused[:feedback_docs]])
    moved = sorted(((k, s + feedback * extra.get(k, 0.0)) for k, s in dense), key=lambda item: -item[1])
    moved_fill = {k: s + feedback * extra.get(k, 0.0) for k, s in fills[0].items()}
    return score_fuse([moved, bm25], weights, normalizer, depth=depth, fill=[moved_fill, fills[1]])
