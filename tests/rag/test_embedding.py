"""Embedding: parity with sentence-transformers (tiny random BERT in the fast tier, MiniLM in the slow tier),
hand-computed pooling, and the invariant that length-sorted batching equals embedding one text at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ragkit import save_tiny_bert

from llmlab.errors import ConfigError, ModelError
from llmlab.rag.embedding import EmbedderConfig, length_batches, load_embedder, pool

TEXTS = [
    "The store keeps documents.",
    "Hybrid retrieval fuses BM25 and dense rankings with reciprocal rank fusion, which is robust.",
    "apples",
    "PostgreSQL with pgvector builds an HNSW index for approximate nearest neighbours in many dimensions.",
    "Gradient checkpointing trades compute for memory.",
]


def st_encode(folder, texts):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, batch_size=2, normalize_embeddings=True, convert_to_numpy=True)


def test_tiny_embedder_matches_sentence_transformers(tiny_bert_folder, tiny_embedder):
    ours = tiny_embedder.embed(TEXTS)
    reference = st_encode(tiny_bert_folder, TEXTS)
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=1e-5)


def test_length_sorted_batches_equal_one_text_at_a_time(tiny_embedder):
    """Padding inside a batch must not change any vector (the attention mask and pooling exclude it)."""
    batched = tiny_embedder.embed(TEXTS)
    alone = np.concatenate([tiny_embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert batched.dtype == np.float32 and batched.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)
    assert tiny_embedder.embed([]).shape == (0, 32)
    # the shared tokenizer is left as it was: the chunker counts tokens with it, untruncated
    assert tiny_embedder.tokenizer.backend_tokenizer.truncation is None


def test_length_batches_group_similar_lengths():
    assert length_batches([3, 9, 1, 7, 5], 2) == [[1, 3], [4, 0], [2]]


def test_pool_hand_computed():
    """Mean over unmasked tokens: ([1, 2] + [3, 4]) / 2 = [2, 3]; / sqrt(13). CLS takes token 0: [1, 2] / sqrt(5)."""
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(pool(hidden, mask), torch.tensor([[2.0, 3.0]]) / 13**0.5)
    torch.testing.assert_close(pool(hidden, mask, "cls"), torch.tensor([[1.0, 2.0]]) / 5**0.5)


def test_cls_pooling_and_max_tokens_come_from_the_folder(tmp_path):
    folder = save_tiny_bert(tmp_path / "cls")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8}))
    embedder = load_embedder(EmbedderConfig(model=str(folder), precision="fp32"))
    assert (embedder.pooling, embedder.max_tokens, embedder.dim) == ("cls", 8, 32)
    assert embedder.name == str(folder.resolve())
    # inputs are truncated to 8 tokens: text that differs only after them embeds the same
    long_a = "the store keeps documents chunks and vectors in one file"
    long_b = "the store keeps documents chunks and vectors apples bananas"
    np.testing.assert_allclose(embedder.embed([long_a]), embedder.embed([long_b]), atol=1e-6)
    words = "the store keeps"  # special tokens ([CLS], [SEP]) are not counted
    assert embedder.count_tokens(words) == len(embedder.tokenizer.tokenize(words))
    assert embedder.count_tokens(words) == len(embedder.tokenizer(words)["input_ids"]) - 2


def test_bf16_stays_close_to_fp32(tiny_bert_folder, tiny_embedder):
    bf16 = load_embedder(EmbedderConfig(model=str(tiny_bert_folder), precision="bf16"))
    cosine = (bf16.embed(TEXTS) * tiny_embedder.embed(TEXTS)).sum(axis=1)
    assert cosine.min() > 0.99


def test_bad_config_and_non_encoder(tiny_folder):
    with pytest.raises(ConfigError, match="--precision must be one of bf16, fp32, got 'int8'"):
        EmbedderConfig(precision="int8")
    with pytest.raises(ConfigError, match="--batch-size must be at least 1, got 0"):
        EmbedderConfig(batch_size=0)
    with pytest.raises(ModelError, match="is a decoder-only model; use an encoder such as minilm-l6"):
        load_embedder(EmbedderConfig(model=str(tiny_folder)))


@pytest.mark.slow
def test_minilm_matches_sentence_transformers():
    """The packaged MiniLM: fp32 equals sentence-transformers (cosine >= 0.999); bf16 stays >= 0.999 too."""
    from llmlab.models.registry import resolve

    words = " ".join(TEXTS * 12).split()
    texts = TEXTS + [" ".join(words[i : i + 40 + 7 * i]) for i in range(20)]  # up to ~300 words: truncated
    reference = st_encode(resolve("minilm-l6").folder, texts)
    for precision in ("fp32", "bf16"):
        embedder = load_embedder(EmbedderConfig(precision=precision, batch_size=8))
        assert (embedder.name, embedder.dim, embedder.max_tokens) == ("minilm-l6", 384, 256)
        cosine = (embedder.embed(texts) * reference).sum(axis=1)
        assert cosine.min() >= (0.99999 if precision == "fp32" else 0.999), (precision, cosine.min())
