"""A synthetic task for learning checks: reverse a short sequence (prompt: the sequence and SEP; completion:
the reversed sequence and EOS), on token ids directly (no tokenizer needed)."""

from __future__ import annotations

import random

from llmlab.data.packing import single_rows
from llmlab.data.tokenize import Tokenized
from llmlab.training.batches import RowBatches

SEP, EOS, PAD, VOCAB = 4, 2, 3, 32


def reverse_example(rng: random.Random, n: int = 4) -> Tokenized:
    xs = [rng.randrange(10, 18) for _ in range(n)]
    ids = [*xs, SEP, *xs[::-1], EOS]
    return Tokenized(ids, [False] * (n + 1) + [True] * (n + 1), "synthetic")


def reverse_data(n: int, seed: int, batch_size: int, shuffle: bool = True) -> RowBatches:
    rng = random.Random(seed)
    rows = single_rows([reverse_example(rng) for _ in range(n)])
    return RowBatches(rows, batch_size, PAD, seed=seed, shuffle=shuffle)


def tiny(seed: int = 0):
    from tiny import tiny_llama

    return tiny_llama(VOCAB, seed=seed, initializer_range=0.02).train()
