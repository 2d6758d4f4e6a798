"""Embedding: parity with sentence-transformers (tiny random BERT in the fast tier, MiniLM in the slow tier),
the fused BERT forward against transformers' BertModel, the fallback to transformers for other encoders,
hand-computed pooling, and the invariant that length-sorted batching equals embedding one text at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ragkit import save_tiny_bert

from llmlab.errors import ConfigError, ModelError
from llmlab.models.fused_bert import FusedBert, supports
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
    # a token budget of 18 (padded): 9 + 7 -> 2 x 9 = 18; then 5 + 3 + 1 -> 3 x 5 = 15
    assert length_batches([3, 9, 1, 7, 5], 4, batch_tokens=18) == [[1, 3], [4, 0, 2]]
    assert length_batches([30, 2], 4, batch_tokens=10) == [[0], [1]]  # too long for the budget: alone


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


def tiny_bert_model(hidden_act: str = "gelu"):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act=hidden_act,
    )
    return BertModel(config).eval()


def padded_batch(lengths: list[int], vocab: int = 99) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and 0/1 mask for rows of the given lengths, padded with id 0 to the longest."""
    torch.manual_seed(1)
    width = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), width))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_fused_bert_equals_transformers(hidden_act):
    """fp32: the fused forward equals BertModel's last hidden state at every real token, padded rows too."""
    model = tiny_bert_model(hidden_act)
    ids, mask = padded_batch([17, 5, 1, 11])
    with torch.inference_mode():
        reference = model(input_ids=ids, attention_mask=mask).last_hidden_state
    fused = FusedBert(model, "fp32")(ids, mask)
    keep = mask.bool()
    torch.testing.assert_close(fused[keep], reference[keep])
    # a row alone (no padding) gives the same as inside the padded batch
    alone = FusedBert(model, "fp32")(ids[1:2, :5], mask[1:2, :5])
    torch.testing.assert_close(alone[0], fused[1, :5])


def test_fused_bert_bf16_stays_close_to_fp32():
    """bf16, with oneDNN's fused linears where this CPU has them and plain torch ops otherwise."""
    model = tiny_bert_model()
    ids, mask = padded_batch([17, 5, 1, 11])
    exact = pool(FusedBert(model, "fp32")(ids, mask), mask)
    fast = FusedBert(model.to(torch.bfloat16), "bf16")
    paths = [fast(ids, mask)]
    if fast.onednn:
        fast.onednn = False
        paths.append(fast(ids, mask))
    for hidden in paths:
        assert hidden.dtype == torch.bfloat16
        assert (pool(hidden, mask) * exact).sum(-1).min() > 0.999


def test_fused_forward_only_for_bert_and_off_switch(tiny_bert_folder, tiny_embedder, tmp_path):
    """BERT folders take the fused path unless fused=False (same vectors); another encoder (DistilBERT)
    falls back to transformers' module and still matches sentence-transformers."""
    from transformers import DistilBertConfig, DistilBertModel

    assert tiny_embedder.fused is not None
    plain = load_embedder(EmbedderConfig(model=str(tiny_bert_folder), precision="fp32", fused=False))
    assert plain.fused is None
    np.testing.assert_allclose(plain.embed(TEXTS), tiny_embedder.embed(TEXTS), atol=1e-5)

    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(tiny_embedder.tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=64, pad_token_id=tiny_embedder.tokenizer.pad_token_id,
    )  # fmt: skip
    folder = tmp_path / "distilbert"
    DistilBertModel(config).eval().save_pretrained(folder)
    tiny_embedder.tokenizer.save_pretrained(folder)
    other = load_embedder(EmbedderConfig(model=str(folder), precision="fp32"))
    assert other.fused is None and not supports(other.model)
    np.testing.assert_allclose(other.embed(TEXTS), st_encode(folder, TEXTS), atol=1e-5, rtol=1e-5)


def test_bad_config_and_non_encoder(tiny_folder):
    with pytest.raises(ConfigError, match="--precision must be one of bf16, fp32, got 'int8'"):
        EmbedderConfig(precision="int8")
    with pytest.raises(ConfigError, match="--batch-size must be at least 1, got 0"):
        EmbedderConfig(batch_size=0)
    with pytest.raises(ConfigError, match="--batch-tokens must be at least 1, got 0"):
        EmbedderConfig(batch_tokens=0)
    with pytest.raises(ModelError, match="is a decoder-only model; use an encoder such as minilm-l6"):
        load_embedder(EmbedderConfig(model=str(tiny_folder)))


@pytest.mark.slow
def test_minilm_matches_sentence_transformers():
    """The packaged MiniLM through the fused forward: fp32 equals sentence-transformers (cosine >= 0.99999),
    bf16 stays >= 0.999."""
    from llmlab.models.registry import resolve

    words = " ".join(TEXTS * 12).split()
    texts = TEXTS + [" ".join(words[i : i + 40 + 7 * i]) for i in range(20)]  # up to ~300 words: truncated
    reference = st_encode(resolve("minilm-l6").folder, texts)
    for precision in ("fp32", "bf16"):
        embedder = load_embedder(EmbedderConfig(precision=precision, batch_size=8))
        assert (embedder.name, embedder.dim, embedder.max_tokens) == ("minilm-l6", 384, 256)
        assert embedder.fused is not None  # MiniLM is a BertModel: the fused forward
        cosine = (embedder.embed(texts) * reference).sum(axis=1)
        assert cosine.min() >= (0.99999 if precision == "fp32" else 0.999), (precision, cosine.min())


def test_bf16_embedding_runs_with_avx2_kernels_only():
    """Issue 8: under `ONEDNN_MAX_CPU_ISA=AVX2` (as on a CPU without AVX-512) oneDNN cannot build a bf16 linear
    ("could not create a primitive descriptor") and `rag ingest` crashed; the fused path now falls back to
    torch's linear there, and gives the same embedding as fp32 to 0.999 cosine."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent(
        """
        import torch
        from test_embedding import padded_batch, tiny_bert_model
        from llmlab.models.fused_bert import FusedBert, onednn_bf16_works
        from llmlab.rag.embedding import pool
        model = tiny_bert_model()
        ids, mask = padded_batch([17, 5, 1, 11])
        exact = pool(FusedBert(model, "fp32")(ids, mask), mask)
        fast = FusedBert(model.to(torch.bfloat16), "bf16")
        cosine = float((pool(fast(ids, mask), mask) * exact).sum(-1).min())
        print(onednn_bf16_works(), fast.onednn, cosine > 0.999)
        """
    )
    here = Path(__file__).parent
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "True"]
