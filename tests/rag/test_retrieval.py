"""Retrieval: reciprocal-rank fusion by hand, safe full-text queries, and the three modes through a store."""

from __future__ import annotations

import numpy as np
import pytest
from ragkit import unit

from llmlab.errors import ConfigError
from llmlab.rag.retrieval import SearchConfig, rrf_fuse, search
from llmlab.rag.stores import Filters
from llmlab.rag.stores.text_query import fts5_match, query_terms, tsquery_text
from llmlab.rag.types import Chunk, Document, Unit


def test_rrf_hand_computed():
    """k = 60. Lists: dense [a, b, c], bm25 [c, a, d].
    a: 1/61 + 1/62 = 0.0325225   c: 1/63 + 1/61 = 0.0322664   b: 1/62 = 0.0161290   d: 1/63 = 0.0158730."""
    fused = rrf_fuse([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert [key for key, _ in fused] == ["a", "c", "b", "d"]
    np.testing.assert_allclose([s for _, s in fused], [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 63])


def test_rrf_weights_k_and_ties():
    """With k = 0 and weights (1, 2): x = 1/1 + 2/2 = 2, y = 1/2 + 2/1 = 2.5 -> y first.
    A tie (two lists, each key in one at rank 1) goes to the key of the earlier list."""
    fused = rrf_fuse([["x", "y"], ["y", "x"]], k=0, weights=[1.0, 2.0])
    assert fused == [("y", 2.5), ("x", 2.0)]
    assert [k for k, _ in rrf_fuse([["p"], ["q"]])] == ["p", "q"]
    assert [k for k, _ in rrf_fuse([["q"], ["p"]])] == ["q", "p"]
    with pytest.raises(ConfigError, match="got 1 weights for 2 rankings"):
        rrf_fuse([["a"], ["b"]], weights=[1.0])


def test_fts_query_escaping():
    assert query_terms('What is "NEAR"(x) AND y* of the ERR-4012?') == ["near", "x", "y", "err", "4012"]
    assert query_terms("the of and") == ["the", "of", "and"]  # all stop words: keep them
    assert query_terms("?!*()") == []
    assert query_terms("Ünïcode café straße") == ["ünïcode", "café", "straße"]
    assert fts5_match(["near", "x"]) == '"near" OR "x"'
    assert tsquery_text(["o'neil", "a\\b"]) == "'o''neil' | 'a\\\\b'"
    assert len(query_terms(" ".join(f"w{i}" for i in range(100)))) == 32


def _fill(store):
    """Four chunks with hand-made vectors; the fake query embedding is (1, 0, 0)."""
    store.bind_embedder("toy", 3)
    texts = ["apple orchard harvest", "banana plantation", "cherry blossom apple", "durian market"]
    vectors = [unit(1, 0, 0), unit(1, 0.5, 0), unit(1, 1, 1), unit(0, 1, 0)]
    doc = Document("/d/fruit.md", "markdown", "Fruit", [Unit(t) for t in texts], "h")
    chunks = [Chunk(t, doc.source, "markdown", i, title="Fruit") for i, t in enumerate(texts)]
    store.replace_document(doc, chunks, np.stack(vectors))


def fake_embed(texts):
    return np.stack([unit(1, 0, 0) for _ in texts])


def test_hybrid_search_hand_computed(backend):
    """Query "cherry apple". Dense (cosine to (1,0,0)): orchard 1.0, banana 0.894, cherry 0.577, durian 0.
    BM25: cherry (both words) first, orchard (one word) second; banana and durian do not match.
    RRF k=60: orchard 1/61 + 1/62, cherry 1/63 + 1/61, banana 1/62, durian 1/64."""
    _fill(backend)
    hits = search(backend, "cherry apple", fake_embed, SearchConfig(mode="hybrid", top_k=4, fusion="rrf"))
    assert [h.chunk.text.split()[0] for h in hits] == ["apple", "cherry", "banana", "durian"]
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    np.testing.assert_allclose([h.score for h in hits], [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 64])
    assert hits[0].scores["dense_rank"] == 1 and hits[0].scores["bm25_rank"] == 2
    assert "bm25" not in hits[2].scores
    assert hits[0].chunk.title == "Fruit" and hits[0].chunk.source == "/d/fruit.md"


def test_single_modes_and_top_k(backend):
    _fill(backend)
    dense = search(backend, "cherry apple", fake_embed, SearchConfig(mode="dense", top_k=2))
    assert [h.chunk.text for h in dense] == ["apple orchard harvest", "banana plantation"]
    np.testing.assert_allclose([h.score for h in dense], [1.0, 2 / np.sqrt(5)], rtol=1e-5)
    bm25 = search(backend, "cherry apple", None, SearchConfig(mode="bm25", top_k=5))
    assert [h.chunk.text for h in bm25] == ["cherry blossom apple", "apple orchard harvest"]
    filtered = search(backend, "apple", fake_embed, SearchConfig(top_k=5), Filters(source_types=("pdf",)))
    assert filtered == []


def test_search_config_errors(backend):
    with pytest.raises(ConfigError, match="--mode must be one of hybrid, dense, bm25, got 'sparse'"):
        SearchConfig(mode="sparse")
    with pytest.raises(ConfigError, match=r"--chunks \(top_k\) must be at least 1, got 0"):
        SearchConfig(top_k=0)
    with pytest.raises(ConfigError, match="needs an embedder; use --mode bm25"):
        search(backend, "x", None, SearchConfig(mode="dense"))
    with pytest.raises(ConfigError, match="the query is empty"):
        search(backend, "  ", fake_embed)
    with pytest.raises(ConfigError, match="--type must be one of pdf, html"):
        Filters(source_types=("odt",))  # type: ignore[arg-type]


def test_filter_glob_semantics():
    f = Filters(path="notes/*.md")
    assert f.matches("/home/me/notes/a.md", "markdown")
    assert f.matches("/home/me/notes/deep/a.md", "markdown")  # '*' crosses folders
    assert not f.matches("/home/me/mynotes/a.md", "markdown")  # relative globs start at a folder boundary
    assert Filters(path="/home/*").matches("/home/me/x.txt", "text")
    assert not Filters(path="/work/*").matches("/home/me/x.txt", "text")
    assert Filters().matches("anything", "pdf") and Filters().empty
