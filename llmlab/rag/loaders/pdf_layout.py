"""Reading order for a PDF page rendered as a character grid: columns read one after the other, tables by row.

pypdf's layout mode (`extract_text(extraction_mode="layout")`) places each piece of text at its position on a
fixed-width grid, so columns of a page appear side by side on the same lines. Plain mode follows the content
stream instead, which is line by line across columns for some producers. This module reads the grid:

    block  = consecutive non-blank lines (up to one blank line between) that share a gutter: character
             columns of at least GUTTER spaces, blank in every line of the block, with words on its left,
             and the text beside it aligned on one of its edges in >= 80% of the lines (a real column)
    text columns when the block has >= 3 lines and its segments average >= 4 words (lines of prose):
             each column is read top to bottom, then the next one
    table  otherwise (short cells): one row per line, non-empty cells joined by " | "
    a gutter with only marks to its left (bullets of a list) does not count

Outside blocks a line's runs of spaces become one space (justified text spreads words apart). The rules are
heuristics on the grid, not a layout analysis like pdfminer's; they are tested on generated two-column pages,
tables and single-column justified text. Tests: tests/rag/test_loaders_pdf.py
"""

from __future__ import annotations

import re

GUTTER = 3
"""Fewest blank character columns between two columns of text or two table cells."""

_SPACES = re.compile(r"\s+")


def reading_order(grid: str) -> str:
    """Text of a layout-mode page in reading order; paragraphs (blank lines in the grid) kept as blank lines."""
    lines = [line.rstrip() for line in grid.split("\n")]
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            _blank(out)
            i += 1
            continue
        rows, gutters, nxt = _block(lines, i)
        if gutters:
            out.extend(_read_block(rows, gutters))
            _blank(out)
        else:
            out.append(_SPACES.sub(" ", lines[i]).strip())
        i = nxt
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _blank(out: list[str]) -> None:
    if out and out[-1]:
        out.append("")


def _block(lines: list[str], i: int) -> tuple[list[str], list[tuple[int, int]], int]:
    """(rows, shared gutters, index after) for the block starting at line i; no gutters: a lone line."""
    rows = [lines[i]]
    gutters: list[tuple[int, int]] = []
    j = i + 1
    while True:
        k = j + 1 if j < len(lines) and not lines[j].strip() else j  # one blank line may sit between rows
        if k >= len(lines) or not lines[k].strip():
            break
        wider = real_gutters([*rows, lines[k]])
        if not wider:
            break
        rows.append(lines[k])
        gutters = wider
        j = k + 1
    return (rows, gutters, j) if gutters else (rows, [], i + 1)


def real_gutters(rows: list[str]) -> list[tuple[int, int]]:
    """Shared gutters that separate columns: words on the left, and the text beside them aligned on it."""
    return [g for g in internal_gutters(rows) if _has_words(rows, g) and _aligned(rows, g)]


def internal_gutters(rows: list[str]) -> list[tuple[int, int]]:
    """Runs [start, end) of >= GUTTER character columns blank in every row, with text on both sides in some row."""
    width = max(len(r) for r in rows)
    left = min(len(r) - len(r.lstrip()) for r in rows)
    blank = [all(c >= len(r) or r[c] == " " for r in rows) for c in range(width)]
    gutters: list[tuple[int, int]] = []
    c = left
    while c < width:
        if not blank[c]:
            c += 1
            continue
        start = c
        while c < width and blank[c]:
            c += 1
        if c < width and c - start >= GUTTER:
            gutters.append((start, c))
    return gutters


def _read_block(rows: list[str], gutters: list[tuple[int, int]]) -> list[str]:
    """Lines of a block: column after column for prose, row by row with " | " between cells for a table."""
    bounds = [0, *(g for gutter in gutters for g in gutter), max(len(r) for r in rows)]
    cells = [
        [_SPACES.sub(" ", r[a:b]).strip() for a, b in zip(bounds[::2], bounds[1::2], strict=True)]
        for r in rows
    ]
    filled = [c for row in cells for c in row if c]
    if len(rows) >= 3 and sum(len(c.split()) for c in filled) >= 4 * len(filled):
        columns = ["\n".join(row[k] for row in cells if row[k]) for k in range(len(bounds) // 2)]
        return "\n\n".join(col for col in columns if col).split("\n")
    return [" | ".join(c for c in row if c) for row in cells]


def _aligned(rows: list[str], gutter: tuple[int, int]) -> bool:
    """True when >= 80% of the rows with text on both sides start their right part at the gutter's end (a
    left-aligned column) or end their left part at its start (right-aligned numbers). Word gaps of justified
    lines that happen to line up are ragged on both edges, so they do not count."""
    start, end = gutter
    both = [r for r in rows if r[:start].strip() and r[end:].strip()]
    if len(both) < 2:
        return False
    left = sum(1 for r in both if r[start - 1] != " ")
    right = sum(1 for r in both if r[end] != " ")
    return max(left, right) >= 0.8 * len(both)


def _has_words(rows: list[str], gutter: tuple[int, int]) -> bool:
    """False when the text left of the gutter is only marks (bullets, dashes): a list, not two columns."""
    return any(any(ch.isalnum() for ch in r[: gutter[0]]) for r in rows)
