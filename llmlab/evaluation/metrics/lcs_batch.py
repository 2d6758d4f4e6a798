"""ROUGE-Lsum's union-LCS hits for many summaries at once, vectorised with numpy over sentence pairs.

The same algorithm as `lcs.py` (Allison-Dix / Hyyrö bit-parallel rows, then rouge-score's backtrack read off the
rows), with one uint64 word per (reference sentence, output sentence) pair instead of one Python integer per
reference sentence: every numpy operation advances all pairs by one row. Row i of pair p:

    U = V & M[p, i],  V' = ((V + U) | (V - U)) & full,   stops = M[p, i] | ~((V' - V + 2^n) & V')

and the backtrack walks the rows from the bottom, all pairs in step: at a row whose token occurs in the output
sentence, the highest stop bit below the current column is a match (a diagonal step: the reference position
is in this LCS) or not (the walk moves up to the column after it). Match masks M come from a sorted table of
(output sentence, token) -> positions, so the work follows the real sentence lengths. Output sentences longer
than 63 tokens do not fit a word: those jobs are left to `lcs.py` (`fits` is False).

ROUGE-Lsum then counts, per job, min(times token t is in the unions, times t is in the output) over tokens t
(see `rouge._score_lsum`). Parity: tests/evaluation/test_rouge.py::test_matches_rouge_score_on_generated_texts
and ::test_long_sentences_match_rouge_score (which exercises both paths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD = 63
"""Longest output sentence (in tokens) one uint64 word holds, with its guard bit."""

_BUCKET = 8192
"""Sentence pairs walked together (pairs are sorted by reference length, so a bucket's rows are few)."""


@dataclass(frozen=True)
class Sentences:
    """The non-empty sentences of a set of texts, as spans of one token-id array."""

    start: np.ndarray
    """(S,) where each sentence starts in the id array."""
    length: np.ndarray
    """(S,) tokens per sentence."""
    first: np.ndarray
    """(T,) index of each text's first sentence (its sentences are consecutive)."""
    count: np.ndarray
    """(T,) sentences per text."""
    text_start: np.ndarray
    """(T,) where each text starts in the id array."""
    text_length: np.ndarray
    """(T,) tokens per text."""
    longest: np.ndarray
    """(T,) tokens in each text's longest sentence."""

    @classmethod
    def from_lengths(cls, per_text: list[list[int]]) -> Sentences:
        """From each text's sentence lengths, texts and sentences laid out back to back (empty ones skipped)."""
        length = np.asarray([n for text in per_text for n in text if n], dtype=np.int64)
        count = np.asarray([sum(1 for n in text if n) for text in per_text], dtype=np.int64)
        text_length = np.asarray([sum(text) for text in per_text], dtype=np.int64)
        longest = np.asarray([max(text, default=0) for text in per_text], dtype=np.int64)
        return cls(
            np.cumsum(length) - length,
            length,
            np.cumsum(count) - count,
            count,
            np.cumsum(text_length) - text_length,
            text_length,
            longest,
        )


def _pairs(sentences: Sentences, targets: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, ...]:
    """For every job, every (reference sentence, output sentence): job, the two sentence indices, and a group
    number shared by the pairs of one reference sentence of one job."""
    rows, cols = sentences.count[targets], sentences.count[outputs]
    per_job = rows * cols
    job = np.repeat(np.arange(len(targets)), per_job)
    local = np.arange(per_job.sum()) - np.repeat(np.cumsum(per_job) - per_job, per_job)
    r, c = local // cols[job], local % cols[job]
    group = (np.cumsum(rows) - rows)[job] + r
    return job, sentences.first[targets][job] + r, sentences.first[outputs][job] + c, group


def _match_masks(
    ids: np.ndarray, sentences: Sentences, ref: np.ndarray, out: np.ndarray, rows: int
) -> np.ndarray:
    """(pairs, rows) uint64: bit j of [p, i] is set when token i of reference sentence ref[p] equals token j of
    output sentence out[p]."""
    base = int(ids.max()) + 1
    # the table: (output sentence, token) -> bits of its positions
    sent = np.unique(out)
    lens = sentences.length[sent]
    owner = np.repeat(sent, lens)
    pos = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    keys = owner * base + ids[sentences.start[owner] + pos]
    order = np.argsort(keys, kind="stable")
    keys, bits = keys[order], (np.uint64(1) << pos[order].astype(np.uint64))
    heads = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    table_keys, table_bits = keys[heads], np.bitwise_or.reduceat(bits, heads)
    # the queries: every real position of every pair's reference sentence
    r_lens = sentences.length[ref]
    pair = np.repeat(np.arange(len(ref)), r_lens)
    i = np.arange(r_lens.sum()) - np.repeat(np.cumsum(r_lens) - r_lens, r_lens)
    query = out[pair] * base + ids[sentences.start[ref[pair]] + i]
    at = np.minimum(np.searchsorted(table_keys, query), len(table_keys) - 1)
    masks = np.zeros((len(ref), rows), dtype=np.uint64)
    masks[pair, i] = np.where(table_keys[at] == query, table_bits[at], np.uint64(0))
    return masks


def _highest_bit(s: np.ndarray) -> np.ndarray:
    """floor(log2(s)) for s > 0 (uint64), exact: the float conversion may round up, so step back if it did."""
    e = np.maximum(np.frexp(s.astype(np.float64))[1].astype(np.int64) - 1, 0)
    return e - ((s >> e.astype(np.uint64)) == 0)


def _walk(masks: np.ndarray, c_len: np.ndarray) -> np.ndarray:
    """(pairs, rows) bool: reference positions on rouge-score's LCS of each sentence pair."""
    n = c_len.astype(np.uint64)
    full = (np.uint64(1) << n) - np.uint64(1)
    guard = np.uint64(1) << n
    v = full.copy()
    stops = np.empty_like(masks)
    for i in range(masks.shape[1]):
        m = masks[:, i]
        u = v & m
        new = ((v + u) | (v - u)) & full
        stops[:, i] = m | ~((new - v + guard) & new)
        v = new
    level = c_len - np.bitwise_count(v).astype(np.int64)  # LCS length: diagonal steps to come
    top = c_len.copy()  # the walk's column j
    found = np.zeros(masks.shape, dtype=bool)
    for i in range(masks.shape[1] - 1, -1, -1):
        m = masks[:, i]
        active = (m != 0) & (level > 0) & (top > 0)
        s = stops[:, i] & ((np.uint64(1) << top.astype(np.uint64)) - np.uint64(1))
        step = active & (s != 0)
        e = _highest_bit(np.where(step, s, np.uint64(1)))
        diag = step & (((m >> e.astype(np.uint64)) & np.uint64(1)) == 1)
        found[:, i] = diag
        level -= diag
        top = np.where(diag, e, np.where(step, e + 1, np.where(active, 0, top)))
    return found


def fits(sentences: Sentences, outputs: np.ndarray) -> np.ndarray:
    """(jobs,) bool: every sentence of the output is at most 63 tokens long."""
    return sentences.longest[outputs] <= WORD


def union_lcs_hits(
    ids: np.ndarray, sentences: Sentences, targets: np.ndarray, outputs: np.ndarray
) -> np.ndarray:
    """For each job (reference text targets[k], output text outputs[k]): ROUGE-Lsum's clipped union-LCS hits.

    Args:
        ids: token ids of every text, concatenated (int64, >= 1).
        sentences: the texts' non-empty sentences as spans of `ids`.
        targets, outputs: (jobs,) text indices; every output sentence must `fit` (<= 63 tokens).
    """
    job, ref, out, group = _pairs(sentences, targets, outputs)
    if len(job) == 0:
        return np.zeros(len(targets), dtype=np.int64)
    found_pair, found_pos = [], []
    order = np.argsort(sentences.length[ref], kind="stable")
    for start in range(0, len(order), _BUCKET):
        bucket = order[start : start + _BUCKET]
        rows = int(sentences.length[ref[bucket]].max())
        masks = _match_masks(ids, sentences, ref[bucket], out[bucket], rows)
        pair, pos = np.nonzero(_walk(masks, sentences.length[out[bucket]]))
        found_pair.append(bucket[pair])
        found_pos.append(pos)
    pair, pos = np.concatenate(found_pair), np.concatenate(found_pos)
    return _clipped_hits(ids, sentences, targets, outputs, job, ref, group, pair, pos)


def _clipped_hits(
    ids: np.ndarray,
    sentences: Sentences,
    targets: np.ndarray,
    outputs: np.ndarray,
    job: np.ndarray,
    ref: np.ndarray,
    group: np.ndarray,
    pair: np.ndarray,
    pos: np.ndarray,
) -> np.ndarray:
    """Per job: sum over tokens of min(times in the union LCSs, times in the output)."""
    # the union over output sentences: each (reference sentence of a job, position) once
    _, first = np.unique(group[pair] * (int(pos.max(initial=0)) + 1) + pos, return_index=True)
    pair, pos = pair[first], pos[first]
    base = int(ids.max()) + 1
    union = job[pair] * base + ids[sentences.start[ref[pair]] + pos]
    # each output's tokens
    starts, lengths = sentences.text_start[outputs], sentences.text_length[outputs]
    index = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    output = np.repeat(np.arange(len(outputs)), lengths) * base + ids[index]
    u_keys, u_counts = np.unique(union, return_counts=True)
    o_keys, o_counts = np.unique(output, return_counts=True)
    common, ui, oi = np.intersect1d(u_keys, o_keys, assume_unique=True, return_indices=True)
    clipped = np.minimum(u_counts[ui], o_counts[oi])
    return np.bincount(common // base, weights=clipped, minlength=len(targets)).astype(np.int64)
