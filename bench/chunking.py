"""Chunking speed: `chunk_document` vs the floor it cannot beat, one tokenizer pass over the same text.

Chunking tokenizes each unit once (with offsets), then counts each chunk once more to verify its budget, so
its cost should stay within a small factor of a single `encode` of the text. Same text, same tokenizer
(MiniLM's WordPiece, the default embedder's), same process; prints both in MB/s and the ratio.

    .venv/bin/python bench/chunking.py [--mb 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from llmlab.models.registry import resolve
from llmlab.rag.chunking import chunk_document, token_encoder
from llmlab.rag.types import Document, Unit

ROOT = Path(__file__).resolve().parent.parent


def corpus(megabytes: float) -> list[str]:
    """The repository's Markdown and Python files, repeated to the size asked, as one unit per file."""
    files = [
        *sorted(ROOT.glob("*.md")),
        *sorted(ROOT.glob("docs/*.md")),
        *sorted(ROOT.glob("llmlab/**/*.py")),
    ]
    texts = [p.read_text(encoding="utf-8") for p in files]
    units: list[str] = []
    while sum(map(len, units)) < megabytes * 1e6:
        units += texts
    return units


def best_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve("minilm-l6").folder)
    units = corpus(args.mb)
    size = sum(map(len, units)) / 1e6
    doc = Document("bench", "markdown", "bench", [Unit(text=t) for t in units], "")
    encode = token_encoder(tokenizer)
    chunks = chunk_document(doc, tokenizer)
    ours = best_seconds(lambda: chunk_document(doc, tokenizer), args.repeat)
    floor = best_seconds(lambda: [encode(t) for t in units], args.repeat)
    print(f"text: {size:.2f} MB in {len(units)} units -> {len(chunks)} chunks of <= 200 tokens")
    print(f"ours   chunk_document       {size / ours:8.2f} MB/s")
    print(f"floor  one tokenizer pass   {size / floor:8.2f} MB/s")
    print(f"ratio  (ours / floor speed) {floor / ours:8.2f}")


if __name__ == "__main__":
    main()
