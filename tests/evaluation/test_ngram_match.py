"""Corpus-wide clipped n-gram matching with one sort equals per-sentence Counter arithmetic."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.evaluation.metrics.ngram_match import clipped_matches, encode_tokens, layout

ORDER = 4


def ngrams(tokens: list[int], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def clip(a: Counter, b: Counter) -> int:
    return sum(min(count, b[g]) for g, count in a.items())


def expected(
    preds: list[list[int]], refs: list[list[list[int]]], n: int
) -> tuple[list[list[int]], list[int]]:
    slots = max(map(len, refs))
    per_ref = [
        [clip(ngrams(p, n), ngrams(r[s], n)) if s < len(r) else 0 for p, r in zip(preds, refs, strict=True)]
        for s in range(slots)
    ]
    merged = []
    for p, r in zip(preds, refs, strict=True):
        most: Counter = Counter()
        for ref in r:
            most |= ngrams(ref, n)
        merged.append(clip(ngrams(p, n), most))
    return per_ref, merged


def run(preds: list[list[int]], refs: list[list[list[int]]]):
    texts = [[str(t) for t in p] for p in preds] + [[str(t) for t in r] for rs in refs for r in rs]
    ids, lengths = encode_tokens(texts)
    item, group, slots = layout(refs)
    return clipped_matches(ids, lengths, np.asarray(item), np.asarray(group), len(preds), slots, ORDER)


seq = st.lists(st.integers(0, 3), max_size=12)
wide = st.lists(st.integers(0, 100_000), max_size=12)  # ids of 17 bits: keys take several 63-bit words


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(seq, st.lists(seq, min_size=1, max_size=3)), min_size=1, max_size=5))
def test_matches_counter_reference(items) -> None:
    preds, refs = [p for p, _ in items], [r for _, r in items]
    got = run(preds, refs)
    for n in range(1, ORDER + 1):
        per_ref, merged = expected(preds, refs, n)
        assert got.per_ref[n - 1].tolist() == per_ref
        assert got.merged[n - 1].tolist() == merged


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(wide, st.lists(wide, min_size=1, max_size=2)), min_size=1, max_size=4))
def test_wide_keys_use_several_words(items) -> None:
    preds, refs = [p for p, _ in items], [r for _, r in items]
    got = run(preds, refs)
    for n in range(1, ORDER + 1):
        assert got.merged[n - 1].tolist() == expected(preds, refs, n)[1]
