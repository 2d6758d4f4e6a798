"""Scripted fakes for the answering tests: an engine that replies with given text, and an embedder whose
vectors are known (keyword counts), so attribution can be checked by hand.

Import from tests/rag with `from answer_fakes import ...`, from elsewhere with `from rag.answer_fakes import ...`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

KEYWORDS = ("garden", "dog", "bread", "oven", "flour", "train", "ticket", "station")
"""The embedder's axes: one per keyword (plural 's' folded), plus a small constant axis so no vector is 0."""


class KeywordEmbedder:
    """embed(text) = normalize([count(k) for k in KEYWORDS] + [0.2]); word boundaries, case-folded."""

    name = "keywords"
    dim = len(KEYWORDS) + 1
    max_tokens = 512

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer  # the chunker counts tokens with it
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            words = [w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower())]
            rows.append([words.count(k) for k in KEYWORDS] + [0.2])
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class ScriptedStream:
    """What Engine.stream returns: iterable text pieces (5 characters each)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __iter__(self) -> Iterator[str]:
        for i in range(0, len(self.text), 5):
            yield self.text[i : i + 5]


class FakeEngine:
    """Replies with the scripted texts in order; records every prompt and decoding config it was given."""

    def __init__(self, tokenizer, replies: Sequence[str], context_length: int = 8192) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.configs: list = []

    def stream(self, prompt: str, config=None) -> ScriptedStream:
        self.prompts.append(prompt)
        self.configs.append(config)
        if not self.replies:
            raise AssertionError(f"the fake engine has no scripted reply left for prompt:\n{prompt}")
        return ScriptedStream(self.replies.pop(0))

    def generate(self, prompts: Sequence[str], config=None) -> list[ScriptedStream]:
        return [ScriptedStream("".join(self.stream(p, config))) for p in prompts]


DOCS = {
    "garden.md": "# Garden\n\nThe garden opens at 9 am. Dogs must stay on a lead in the garden.\n",
    "bakery.md": "# Bakery\n\nBread bakes in the oven for 40 minutes. Use strong flour for bread.\n",
    "trains.md": "# Trains\n\nBuy a ticket at the station before boarding the train.\n",
}


def write_docs(folder: Path, docs: dict[str, str] = DOCS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    return folder


def keyword_store(folder: Path) -> Iterator[Any]:
    """A SQLite store in `folder` over the documents of `write_docs`, embedded with KeywordEmbedder (a fixture
    body: `yield from keyword_store(tmp_path_factory.mktemp("kb"))`)."""
    from ragkit import tiny_bert_tokenizer

    from llmlab.rag.store import Store
    from llmlab.rag.stores import open_store

    docs = write_docs(folder / "docs")
    store = Store(open_store(str(folder / "kb.sqlite")), KeywordEmbedder(tiny_bert_tokenizer()))
    store.ingest([docs])
    yield store
    store.close()
