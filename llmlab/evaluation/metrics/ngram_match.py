"""Clipped n-gram matches for a whole corpus at once, with one sort (shared by BLEU and chrF).

For every item i, reference slot s and order n = 1..N it computes

    per_ref[n, s, i] = sum over n-grams g of min(count of g in output i, count of g in reference s of item i)
    merged[n, i]     = sum over n-grams g of min(count of g in output i, max over s of count in reference s)

(chrF scores each reference on its own and keeps the best; BLEU clips by the largest count in any one
reference.) Instead of one `Counter` per sentence and order, every position of every text becomes one row
keyed by (item, the N symbols that start there, group), the group being 0 for the output and s + 1 for
reference slot s; symbols past the end of a text are 0, so the row for a window of length m < N never ties
with a longer one. One lexicographic sort of all rows puts equal n-grams of the same item next to each other
for every n at once (a prefix of a sorted key is sorted), the length of the common prefix of neighbouring rows
splits them into runs per order, and per-run counts by group give the clipped sums. Keys wider than 63 bits
are split over several words and sorted with `numpy.lexsort`, so any alphabet and corpus size is exact.

Parity: tests/evaluation/test_ngram_match.py::test_matches_counter_reference
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass
from itertools import chain

import numpy as np

_WORD_BITS = 63


@dataclass(frozen=True)
class Matches:
    """Clipped match counts; see the module docstring."""

    per_ref: np.ndarray
    """(order, slots, items) int64."""
    merged: np.ndarray
    """(order, items) int64."""


def _pack(fields: Sequence[tuple[np.ndarray, int]], size: int) -> list[np.ndarray]:
    """Concatenate non-negative integer fields (most significant first) into 63-bit words, low word first."""
    total = sum(width for _, width in fields)
    words = [np.zeros(size, dtype=np.uint64) for _ in range(max(1, -(-total // _WORD_BITS)))]
    offset = 0
    for values, width in reversed(fields):
        v = values.astype(np.uint64)
        while width > 0:
            word, shift = divmod(offset, _WORD_BITS)
            take = min(width, _WORD_BITS - shift)
            words[word] |= (v & np.uint64((1 << take) - 1)) << np.uint64(shift)
            v = v >> np.uint64(take)
            offset += take
            width -= take
    return words


def _windows(
    ids: np.ndarray, lengths: np.ndarray, order: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per position of the concatenated texts: the `order` symbols starting there (0 past the text's end),
    the text it belongs to, and how many of those symbols are real (the longest n-gram starting there)."""
    size = len(ids)
    text = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    remaining = lengths[text] - (np.arange(size) - starts[text])
    columns = []
    for k in range(order):
        shifted = np.zeros(size, dtype=np.int64)
        if k < size:
            shifted[: size - k] = ids[k:]
        columns.append(np.where(remaining > k, shifted, 0))
    return columns, text, np.minimum(remaining, order)


def clipped_matches(
    ids: np.ndarray,
    lengths: np.ndarray,
    item: np.ndarray,
    group: np.ndarray,
    n_items: int,
    n_slots: int,
    order: int,
) -> Matches:
    """Clipped n-gram match counts for orders 1..`order`.

    Args:
        ids: the symbols of all texts concatenated, each >= 1 (int64).
        lengths: symbols per text (int64), so `ids` splits into texts.
        item: for each text, the item it belongs to (0 .. n_items - 1).
        group: for each text, 0 for the output, s + 1 for reference slot s (at most one text per item and group).
        n_items, n_slots: how many items and reference slots.
        order: the highest n.
    """
    per_ref = np.zeros((order, n_slots, n_items), dtype=np.int64)
    merged = np.zeros((order, n_items), dtype=np.int64)
    if len(ids) == 0:
        return Matches(per_ref, merged)
    columns, text, longest = _windows(ids, lengths, order)
    row_item, row_group = item[text], group[text]
    symbol_bits = int(ids.max()).bit_length()
    fields = [(row_item, max(1, (n_items - 1).bit_length()))]
    fields += [(c, symbol_bits) for c in columns]
    fields.append((row_group, max(1, n_slots.bit_length())))
    words = _pack(fields, len(ids))
    perm = np.argsort(words[0]) if len(words) == 1 else np.lexsort(words)
    row_item, row_group, longest = row_item[perm], row_group[perm], longest[perm]
    # prefix[r] = how many leading symbols row r + 1 shares with row r (0 when the items differ)
    same = row_item[1:] == row_item[:-1]
    prefix = np.zeros(len(same), dtype=np.int64)
    for column in columns:
        c = column[perm]
        same &= c[1:] == c[:-1]
        prefix += same
    for n in range(1, order + 1):
        _count_order(n, prefix, longest, row_item, row_group, n_slots, n_items, per_ref, merged)
    return Matches(per_ref, merged)


def _count_order(
    n: int,
    prefix: np.ndarray,
    longest: np.ndarray,
    row_item: np.ndarray,
    row_group: np.ndarray,
    n_slots: int,
    n_items: int,
    per_ref: np.ndarray,
    merged: np.ndarray,
) -> None:
    """Fill order n: split the sorted rows into runs of equal n-grams and clip counts per run."""
    run_starts = np.flatnonzero(np.concatenate(([True], prefix < n)))
    valid = longest >= n
    run_item = row_item[run_starts]
    counts = [
        np.add.reduceat((valid & (row_group == g)).astype(np.int64), run_starts) for g in range(n_slots + 1)
    ]
    hyp = counts[0]
    most = np.zeros_like(hyp)
    for s in range(n_slots):
        ref = counts[s + 1]
        per_ref[n - 1, s] = np.bincount(run_item, weights=np.minimum(hyp, ref), minlength=n_items).astype(
            np.int64
        )
        np.maximum(most, ref, out=most)
    merged[n - 1] = np.bincount(run_item, weights=np.minimum(hyp, most), minlength=n_items).astype(np.int64)


def encode_chars(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of the texts as dense ids >= 1, concatenated, and each text's length."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    joined = "".join(texts).encode("utf-32-le", "surrogatepass")
    points = np.frombuffer(joined, dtype="<u4")
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), lengths
    _, dense = np.unique(points, return_inverse=True)
    return dense.astype(np.int64).reshape(-1) + 1, lengths


def encode_tokens(texts: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of the texts as ids >= 1 (one per distinct token), concatenated, and each text's length."""
    tokens = list(chain.from_iterable(texts))
    vocab = {t: i for i, t in enumerate(set(tokens), 1)}
    ids = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    return ids, lengths


def layout(references: Sequence[Sized]) -> tuple[list[int], list[int], int]:
    """Item and group of each text when outputs come first and then every item's references in order."""
    n = len(references)
    item = list(range(n))
    group = [0] * n
    for i, refs in enumerate(references):
        item += [i] * len(refs)
        group += range(1, len(refs) + 1)
    return item, group, max(map(len, references), default=0)
