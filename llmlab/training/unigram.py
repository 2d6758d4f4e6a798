"""The unigram baseline a language model must beat: token frequencies of the training text, add-one smoothed.

    p(v) = (count_train(v) + 1) / (N_train + V)          PPL = exp(−(1/N_val) Σ_val log p(y))

Counted over the same targets the model is scored on (every token but the first of each document), so the
two perplexities compare directly. A model that learned nothing about context cannot do better than this.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence


def unigram_perplexity(
    train: Iterable[Sequence[int]], val: Iterable[Sequence[int]], vocab_size: int
) -> float:
    """Perplexity on `val` documents of the add-one unigram model of the `train` documents."""
    counts: Counter[int] = Counter()
    for doc in train:
        counts.update(doc[1:])
    total = sum(counts.values())
    nll, n = 0.0, 0
    for doc in val:
        for token in doc[1:]:
            nll -= math.log((counts[token] + 1) / (total + vocab_size))
            n += 1
    return math.exp(nll / max(n, 1))
