"""Score fusion by hand (min-max, z-score, filled-in scores, pseudo-relevance feedback), and the default
hybrid search through both stores: the dense and feedback scores the stores compute, and the fusion
search() applies to them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_retrieval import _fill, fake_embed

from llmlab.errors import ConfigError
from llmlab.rag.fusion import hybrid_fuse, score_fuse
from llmlab.rag.retrieval import SearchConfig, search

DENSE = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
BM25 = [("c", 8.0), ("a", 4.0)]


def test_minmax_hand_computed():
    """Dense min-max over (0.9, 0.5, 0.1): a 1, b 0.5, c 0. BM25 over (8, 4): c 1, a 0.
    b's BM25 is filled in as 0.0 -> (0 - 4) / 4 = -1; without a fill it gets the list's minimum (4) -> 0.
    Weights (0.5, 0.5): a 0.5, c 0.5 (tie: a, seen first in the dense list), b 0.25 * ... see below."""
    filled = score_fuse([DENSE, BM25], [0.5, 0.5], "minmax", fill=[{}, {"b": 0.0}])
    assert filled == [("a", 0.5), ("c", 0.5), ("b", pytest.approx(0.5 * 0.5 - 0.5))]
    unfilled = score_fuse([DENSE, BM25], [0.5, 0.5], "minmax")
    assert unfilled == [("a", 0.5), ("c", 0.5), ("b", pytest.approx(0.25))]


def test_zscore_hand_computed():
    """Dense: mean 0.5, std sqrt(0.32 / 3) = 0.326599 -> z(a) = 1.224745, z(b) = 0, z(c) = -1.224745.
    BM25: mean 6, std 2 -> z(c) = 1, z(a) = -1, z(b, filled 0.0) = -3.
    (0.5, 0.5): a 0.112372, c -0.112372, b -1.5."""
    z = 0.4 / math.sqrt(0.32 / 3)
    fused = score_fuse([DENSE, BM25], [0.5, 0.5], "zscore", fill=[{}, {"b": 0.0}])
    assert [k for k, _ in fused] == ["a", "c", "b"]
    np.testing.assert_allclose([s for _, s in fused], [0.5 * (z - 1), 0.5 * (1 - z), -1.5])


def test_depth_sets_the_reference_and_weights_scale():
    """depth 1: each list's reference is its top score alone (span 0): the top scores 1, the rest 0."""
    fused = score_fuse([DENSE, BM25], [1.0, 3.0], "minmax", depth=1)
    assert fused == [("c", 3.0), ("a", 1.0), ("b", 0.0)]


def test_feedback_hand_computed():
    """First fusion (min-max, weights 1:1, b's BM25 filled as 6 -> 0.5): a, b, c all 0.5; ties by dense
    rank -> a first, so the feedback centroid is a's vector. Feedback cosines a 1.0, b 0.9, c 0.0 added
    to the dense scores: a 1.9, b 1.4, c 0.1 -> min-max a 1, b 1.3/1.8, c 0. Second fusion:
    b 0.5 * 1.3/1.8 + 0.25 = 0.611, a 0.5, c 0.5."""
    asked = []

    def feedback_scores(top):
        asked.append(top)
        return {"a": 1.0, "b": 0.9, "c": 0.0}

    kwargs = {"fill": ({}, {"b": 6.0}), "feedback_docs": 1, "feedback_scores": feedback_scores}
    assert [k for k, _ in hybrid_fuse(DENSE, BM25, (1.0, 1.0), "minmax", feedback=0.0, **kwargs)] == [
        "a",
        "b",
        "c",
    ]
    fused = hybrid_fuse(DENSE, BM25, (1.0, 1.0), "minmax", feedback=1.0, **kwargs)
    assert asked == [["a"]]
    assert fused == [("b", pytest.approx(1.3 / 1.8 + 0.5)), ("a", 1.0), ("c", 1.0)]


def test_fusion_errors():
    with pytest.raises(ConfigError, match="normalizer must be one of minmax, zscore, got 'mean'"):
        score_fuse([DENSE], [1.0], "mean")
    with pytest.raises(ConfigError, match="got 1 weights for 2 ranked lists"):
        score_fuse([DENSE, BM25], [1.0])
    with pytest.raises(ConfigError, match="--fusion must be one of rrf, minmax, zscore, got 'max'"):
        SearchConfig(fusion="max")
    with pytest.raises(ConfigError, match="--feedback must be >= 0"):
        SearchConfig(feedback=-1)
    with pytest.raises(ConfigError, match="not both 0"):
        SearchConfig(dense_weight=0, bm25_weight=0)


def test_store_dense_scores_and_vectors(backend):
    """The toy store: cosines to (1, 0, 0) are 1, 2/sqrt(5), 1/sqrt(3), 0 for the four chunks; vectors()
    returns what was stored; unknown ids are left out."""
    _fill(backend)
    ids = [i for i, _ in backend.dense_search(np.array([1, 0, 0], np.float32), 4)]
    dense = backend.dense_scores(np.array([1, 0, 0], np.float32), [*ids, 10**9])
    assert sorted(dense) == sorted(ids)
    np.testing.assert_allclose([dense[i] for i in ids], [1, 2 / math.sqrt(5), 1 / math.sqrt(3), 0], atol=1e-6)
    vectors = backend.vectors([ids[0], ids[1], 10**9])
    assert sorted(vectors) == sorted(ids[:2])
    np.testing.assert_allclose(vectors[ids[0]], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(vectors[ids[1]], np.array([1, 0.5, 0]) / math.sqrt(1.25), atol=1e-6)


def test_default_hybrid_is_the_fusion_of_the_store_scores(backend):
    """search() in the default mode returns hybrid_fuse over the store's own lists, fill-ins and feedback
    (z-score, feedback 0.5 over the top 3), and every hit carries both modes' scores."""
    _fill(backend)
    config = SearchConfig(top_k=4)
    hits = search(backend, "cherry apple", fake_embed, config)
    vector = fake_embed(["q"])[0]
    dense = backend.dense_search(vector, config.pool)
    bm25 = backend.text_search("cherry apple", config.pool)
    only_dense = [i for i, _ in dense if i not in dict(bm25)]
    assert len(bm25) == 2 and len(only_dense) == 2  # banana and durian match no query word: BM25 0
    candidates = sorted({i for i, _ in dense} | {i for i, _ in bm25})

    def feedback_scores(top):
        centroid = np.mean([backend.vectors(top)[i] for i in top], axis=0)
        return backend.dense_scores(centroid / np.linalg.norm(centroid), candidates)

    expected = hybrid_fuse(
        dense,
        bm25,
        (1.0, 1.0),
        "zscore",
        fill=({}, dict.fromkeys(only_dense, 0.0)),
        feedback=0.5,
        feedback_scores=feedback_scores,
    )
    assert [(h.chunk_id, h.score) for h in hits] == [(k, pytest.approx(s)) for k, s in expected]
    assert all("dense" in h.scores and "bm25" in h.scores for h in hits)
