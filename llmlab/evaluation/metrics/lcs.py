"""Longest common subsequence of two token lists, bit-parallel on Python integers.

Allison & Dix (1986), "A bit-string longest-common-subsequence algorithm"; Hyyrö (2004), "Bit-parallel LCS-length
computation revisited". Row i of the LCS table, L[i][j] = LCS(a[:i], b[:j]), is kept as one integer V_i over
the positions j of b: a zero bit at j means L[i][j+1] = L[i][j] + 1. With M_t the positions where b holds t,

    U = V & M[a[i]],   V' = (V + U) | (V - U),   V_0 = all ones,   L[i][j] = j - popcount(V_i & (2^j - 1))

so one row costs a few big-integer operations instead of len(b) Python steps. `union_lcs_indices` keeps the rows
and backtracks through them with exactly the tie-breaking of rouge-score's `_backtrack_norec` (move left only
when L[i][j-1] > L[i-1][j]), so it finds the same LCS rouge-score does, which ROUGE-Lsum's union-LCS depends on;
all candidate sentences share one bit string, so a reference sentence is scanned once for all of them.

Parity: tests/evaluation/test_rouge.py::test_lcs_matches_dynamic_programming_table
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Packed:
    """Several candidate sentences side by side in one bit string, each followed by a zero guard bit that
    absorbs the carry of `V + U`, so one pass over a reference sentence computes the rows for all of them."""

    masks: dict[Hashable, int]
    """For each token, the bits of its positions in every sentence."""
    spans: list[tuple[int, int]]
    """(bit offset, length) of each non-empty sentence."""
    full: int
    """Every column bit, no guard bits."""
    guards: int
    """The guard bit above each sentence."""


def pack(sentences: Sequence[Sequence[Hashable]]) -> Packed:
    """Lay the non-empty sentences out in one bit string (see `Packed`)."""
    masks: dict[Hashable, int] = {}
    spans: list[tuple[int, int]] = []
    full = guards = offset = 0
    for sentence in sentences:
        if not sentence:
            continue
        for j, token in enumerate(sentence, offset):
            masks[token] = masks.get(token, 0) | (1 << j)
        spans.append((offset, len(sentence)))
        full |= ((1 << len(sentence)) - 1) << offset
        offset += len(sentence)
        guards |= 1 << offset
        offset += 1
    return Packed(masks, spans, full, guards)


def _walk_bits(a: Sequence[Hashable], packed: Packed) -> tuple[int, list[tuple[int, int, int]]]:
    """Scan a once against every packed sentence.

    Returns the last row V_m and, last row first, for each position i of a whose token occurs in some packed
    sentence: the bits where rouge-score's backtrack, walking left along row i + 1, stops (see
    `union_lcs_indices`), the match mask of a[i], and i. Rows of tokens found nowhere change nothing and the walk
    only steps up through them, so they are left out.
    """
    full, guards, masks = packed.full, packed.guards, packed.masks
    v = full
    rows: list[tuple[int, int, int]] = []
    for i, m in enumerate(map(masks.get, a)):
        if m is None:
            continue
        u = v & m
        above, v = v, ((v + u) | (v - u)) & full
        down = v + guards - above  # bit q: L[i+1][q+1] - L[i][q+1] = 1, per sentence (see below)
        rows.append((m | ~(down & v), m, i))
    rows.reverse()
    return v, rows


def union_lcs_indices(a: Sequence[Hashable], packed: Packed) -> set[int]:
    """Positions in a of the union of one LCS of a with each packed sentence: rouge-score's `_union_lcs`.

    rouge-score picks each LCS by backtracking from (len(a), len(b)): on a match it steps diagonally, else left
    when L[i][j-1] > L[i-1][j], else up. At a mismatch L[i][j] is the larger of the two, so stepping left means
    the vertical step D(j) = L[i][j] - L[i-1][j] is 1 and the horizontal step L[i][j] - L[i][j-1] is 0 (bit j-1
    of V_i set). D rises by one at the bits where V_{i-1} has a one and V_i a zero and falls where V_{i-1} has
    a zero and V_i a one; it stays in {0, 1}, so rises and falls alternate and `falls + 2^n - rises`, which is
    `V_i - V_{i-1} + 2^n`, sets exactly the bits q with D(q + 1) = 1 (the guard bits add 2^n to every sentence
    at once, so no borrow crosses a sentence). The walk along row i therefore stops at the highest bit below j
    of `match | ~(D & V_i)`: one Python step per row.
    """
    if not a or not packed.spans:
        return set()
    last, rows = _walk_bits(a, packed)
    found: set[int] = set()
    for offset, n in packed.spans:
        base = 1 << offset
        top = offset + n  # the walk's column j, as a bit position: top = offset + j
        span = (1 << top) - base
        level = n - (last & span).bit_count()  # LCS length: diagonal steps still to come
        if not level:
            continue
        # rows without a match in this sentence leave its V unchanged, and the walk steps straight up them
        for stops, match, i in [row for row in rows if row[1] & span]:
            s = stops & ((1 << top) - base)
            if not s:
                break  # the walk goes left to column 0: nothing more to find
            top = s.bit_length() - 1
            if (match >> top) & 1:
                found.add(i)  # diagonal step: a[i] is in this LCS
                level -= 1
                if not level:
                    break
            else:
                top += 1  # up, to the column where the walk stopped
    return found


def lcs_length(a: Sequence[Hashable], packed: Packed) -> int:
    """Length of the LCS of a and the packed sentences read as one sequence (guard bits are columns that never
    match, so they change nothing)."""
    columns = packed.full | packed.guards
    v = columns
    masks = packed.masks
    for token in a:
        m = masks.get(token)
        if m is not None:
            u = v & m
            v = ((v + u) | (v - u)) & columns
    return columns.bit_count() - v.bit_count()


def lcs_indices(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[int]:
    """Positions in a (ascending) of the LCS of a and b that rouge-score's `lcs_ind(a, b)` returns."""
    return sorted(union_lcs_indices(a, pack([b])))
