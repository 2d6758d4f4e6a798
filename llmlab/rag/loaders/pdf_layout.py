"""Reading order for a PDF page rendered as a character grid: columns read one after the other, tables by row.

pypdf's layout mode (`extract_text(extraction_mode="layout")`) places each piece of text at its position on a
fixed-width grid, so columns of a page appear side by side on the same lines. Plain mode follows the content
stream instead, which is line by line across columns for some producers. This module reads the grid by
recursive cuts, in the spirit of the XY-cut (Nagy & Seth, ICPR 1984):

    bands   runs of non-blank lines between blank lines (a paragraph, a title, a row of a table)
    groups  consecutive bands merged while their union keeps the same column gutters: character columns of
            at least GUTTER spaces, blank in every line, with words on their left and the text beside them
            aligned on one of their edges in >= 80% of the lines (a real column edge, not word gaps lining
            up by chance). A band whose own gutters the union lost (a table under two columns) starts a group.
            So a figure's empty space, a caption or a paragraph break inside one column does not end it.
    a group with gutters is text columns when its cells average >= 4 words (prose): each column is cut out and
            read the same way (its own bands and groups), then the next column; otherwise it is a table, one
            row per line with the non-empty cells joined by " | "
    a group without gutters is read line by line, a blank line between its bands (paragraphs)

A lone line whose only wide gap follows a section number ("5    Methods") is not a table row, so it does not
end the columns above it. Footnotes (`footnotes`) are cut out before the grid is made and read after the page;
a document's running head and foot (`without_running_lines`) are dropped.
A gutter with only marks to its left (bullets of a list) does not count. Outside tables a line's runs of spaces
become one space (justified text spreads words apart). These are heuristics on the grid, not a layout analysis
like pdfminer's; tests/rag/test_loaders_pdf.py measures them on two- and three-column pages with figures,
captions and tables rendered from known sentences (>= 97% of sentences kept whole), and bench/loaders.py on
public papers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

GUTTER = 3
"""Fewest blank character columns between two columns of text or two table cells."""

TOLERANT_ROWS = 6
"""Rows with text on both sides a gutter needs before half of them sharing an edge is enough (see _aligned)."""

SMALL_FONT = 0.9
"""Text under this share of the page's running-text font height may be a footnote (see `footnotes`)."""

Run = TypeVar("Run", bound=Mapping[str, Any])
"""A text run of pypdf's layout mode (its BTGroup)."""

_SPACES = re.compile(r"\s+")
_SECTION_NUMBER = re.compile(r"(\d{1,2}|[A-Z])(\.\d{1,2})*\.?")


_LEFT_NUMBER = re.compile(r"^(\s*)(\d{1,4})(?=\s{2,}\S)")
_RIGHT_NUMBER = re.compile(r"(?<=\S)(\s{2,})(\d{1,4})$")
_ONLY_NUMBER = re.compile(r"^\s*\d{1,4}\s*$")


def reading_order(grid: str) -> str:
    """Text of a layout-mode page in reading order; paragraphs (blank lines in the grid) kept as blank lines."""
    lines = _without_line_numbers([line.rstrip() for line in grid.split("\n")])
    return "\n\n".join(_joined(p for p in _read_region(lines) if p))


def footnotes(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(running text, footnotes) of a page's text runs (pypdf layout mode's BT groups: tx, displaced_tx, ty,
    flip_sort, font_height, text), so that footnotes are read after the page instead of beside the other column.

    A footnote is a run in a smaller font than the running text (under SMALL_FONT of the font height that most
    characters have) set below all running text in its own horizontal span, and inside the running text's
    left and right edges (line numbers in the margins are not footnotes). A superscript footnote mark in the
    last line of a column sits above that line's baseline, so it stays. The runs are moved only when one of
    them has a letter (a lone page number is not a footnote)."""
    sizes: Counter[float] = Counter()
    for run in runs:
        sizes[round(run["font_height"], 1)] += len(run["text"].strip())
    if not sizes:
        return runs, []
    body = max(sizes.items(), key=lambda kv: kv[1])[0]
    small = [r["font_height"] < SMALL_FONT * body and r["text"].strip() != "" for r in runs]
    main = [r for r, s in zip(runs, small, strict=True) if not s and r["text"].strip()]
    if not main:
        return runs, []
    left = min(r["tx"] for r in main)
    right = max(r["displaced_tx"] for r in main)
    notes = []
    for run, is_small in zip(runs, small, strict=True):
        if not is_small or run["tx"] < left - 1 or run["displaced_tx"] > right + 1:
            continue
        height = run["ty"] * run["flip_sort"]
        above = [
            m["ty"] * m["flip_sort"]
            for m in main
            if m["tx"] < run["displaced_tx"] and run["tx"] < m["displaced_tx"]
        ]
        if all(height < h for h in above):
            notes.append(run)
    if not any(ch.isalpha() for r in notes for ch in r["text"]):
        return runs, []
    moved = {id(r) for r in notes}
    return [r for r in runs if id(r) not in moved], notes


RUNNING_PAGES = 3
"""Fewest pages a running head or foot must be on (and at least half of the pages with text)."""

_DIGITS = re.compile(r"\d+")


def without_running_lines(pages: list[str]) -> list[str]:
    """Pages without their running head and foot: a first (or last) line that, digits aside, is the first (or
    last) line of at least half of the pages with text and of RUNNING_PAGES or more ("Confidential Review Copy.
    DO NOT DISTRIBUTE.", "Page 3 of 12"), unless it is all the page has. It would otherwise sit inside every sentence that runs on from one
    page to the next, and in every chunk of a page's top or foot."""
    lines = [page.split("\n") for page in pages]
    texts = [k for k, page in enumerate(pages) if page.strip()]
    for end in (0, -1):
        keys: Counter[str] = Counter()
        for k in texts:
            keys[_line_key(lines[k], end)] += 1
        for key, count in keys.items():
            if key and count >= RUNNING_PAGES and count >= len(texts) / 2:
                for k in texts:
                    if _line_key(lines[k], end) == key:
                        _drop_line(lines[k], end)
    return ["\n".join(page).strip("\n") for page in lines]


def _line_key(lines: list[str], end: int) -> str:
    """The first (end 0) or last (end -1) non-blank line, spaces collapsed and numbers as "#"."""
    order = lines if end == 0 else reversed(lines)
    line = next((x for x in order if x.strip()), "")
    return _DIGITS.sub("#", " ".join(line.split()))


def _drop_line(lines: list[str], end: int) -> None:
    """Drop the first or last non-blank line, unless it is the page's only one (the page keeps some text)."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if len(filled) > 1:
        del lines[filled[end]]


def _without_line_numbers(lines: list[str]) -> list[str]:
    """Blank out line numbers in the margins (review copies number every line on both sides): a number at the
    start or end of at least half of the page's lines is a ruler, not text."""
    text = [line for line in lines if line.strip()]
    alone = sum(1 for line in text if _ONLY_NUMBER.match(line))
    for pattern in (_LEFT_NUMBER, _RIGHT_NUMBER):
        if text and sum(1 for line in text if pattern.search(line)) + alone >= len(text) / 2:
            lines = [
                pattern.sub(lambda m: m.group(1) + " " * len(m.group(2)), line).rstrip() for line in lines
            ]
            lines = ["" if _ONLY_NUMBER.match(line) else line for line in lines]
    return lines


def _read_region(rows: list[str]) -> list[str]:
    """Paragraphs of a region (rows cut to the region's width), in reading order."""
    out: list[str] = []
    for group, gutters in _groups(_bands(rows)):
        if not gutters:
            out += ["\n".join(_SPACES.sub(" ", r).strip() for r in band) for band in group]
            continue
        lines = [r for band in group for r in band]
        cells = _cells(lines, gutters)
        filled = [c for row in cells for c in row if c]
        if len(lines) >= 3 and sum(len(c.split()) for c in filled) >= 4 * len(filled):
            bounds = _bounds(lines, gutters)
            for a, b in bounds:
                column = [r[a:b] for band in _with_blanks(group) for r in band]
                out += _read_region(column)
        else:
            out.append("\n".join(" | ".join(c for c in row if c) for row in cells if any(row)))
    return out


def _joined(paragraphs: Iterable[str]) -> list[str]:
    """Paragraphs in reading order, a piece that goes on with a hyphenated word or a lower-case word joined to
    the one before: pypdf's grid leaves blank rows where lines of slightly different height meet, and a
    sentence may go on in the next column."""
    out: list[str] = []
    for text in paragraphs:
        if out and (out[-1].endswith("-") or text[:1].islower()) and " | " not in out[-1] + text:
            out[-1] += "\n" + text
        else:
            out.append(text)
    return out


def _bands(rows: list[str]) -> list[list[str]]:
    """Runs of non-blank rows, in order."""
    bands: list[list[str]] = []
    current: list[str] = []
    for row in rows:
        if row.strip():
            current.append(row)
        elif current:
            bands.append(current)
            current = []
    if current:
        bands.append(current)
    return bands


def _groups(bands: list[list[str]]) -> list[tuple[list[list[str]], list[tuple[int, int]]]]:
    """Consecutive bands merged while the union keeps the group's gutters (see the module docstring).

    Gutters must be real (aligned text beside them) where a group starts; a band joins when the group's
    gutters stay blank through it and it brings no more gaps of its own (a row of a table has more), so a band
    whose lines stop short of a gutter (a column beside a figure) does not end the group. A band of several
    lines may bring a new real gutter if it was blank through the whole group (a column that was empty beside
    a figure until then)."""
    groups: list[tuple[list[list[str]], list[tuple[int, int]]]] = []
    for band in bands:
        own = real_gutters(band) if len(band) > 1 else []
        gaps = own if len(band) > 1 else _cell_gaps(band[0])  # a lone line: cells of a table row
        if groups:
            group, gutters = groups[-1]
            rows = [r for b in (*group, band) for r in b]
            if gutters:
                blank = internal_gutters(rows)
                kept = _narrowed(gutters, blank)
                new = [g for g in own if not _covered([g], kept or [])]
                extra = _narrowed(new, blank) if new else []
                fits = len(gaps) <= len(kept or []) and _covered(gaps, kept or [])
                if kept is not None and extra is not None and (fits or (own and extra)):
                    groups[-1] = ([*group, band], sorted(kept + extra))
                    continue
            else:
                union = real_gutters(rows)
                if union and _covered(own, union):
                    groups[-1] = ([*group, band], union)
                    continue
        groups.append(([band], own))
    return groups


def _cell_gaps(line: str) -> list[tuple[int, int]]:
    """A lone line's wide gaps (cells of a table row), less the one after a section number ("5    Methods")."""
    gaps = internal_gutters([line])
    if gaps and _SECTION_NUMBER.fullmatch(line[: gaps[0][0]].strip()):
        gaps = gaps[1:]
    return gaps


def _narrowed(gutters: list[tuple[int, int]], blank: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Each gutter cut to the blank run overlapping it, or None when one of them is no longer blank."""
    out = []
    for a, b in gutters:
        match = [
            (max(a, c), min(b, d)) for c, d in blank if c < b and a < d and min(b, d) - max(a, c) >= GUTTER
        ]
        if not match:
            return None
        out.append(max(match, key=lambda g: g[1] - g[0]))
    return out


def _covered(own: list[tuple[int, int]], union: list[tuple[int, int]]) -> bool:
    """True when each of a band's own gutters overlaps one of the group's (it does not bring new columns)."""
    return all(any(a < d and c < b for c, d in union) for a, b in own)


def _with_blanks(group: list[list[str]]) -> list[list[str]]:
    """The group's bands with one blank row between them, so a column keeps its paragraph breaks."""
    out: list[list[str]] = []
    for band in group:
        if out:
            out.append([""])
        out.append(band)
    return out


def _bounds(rows: list[str], gutters: list[tuple[int, int]]) -> list[tuple[int, int]]:
    edges = [0, *(g for gutter in gutters for g in gutter), max(len(r) for r in rows)]
    return list(zip(edges[::2], edges[1::2], strict=True))


def _cells(rows: list[str], gutters: list[tuple[int, int]]) -> list[list[str]]:
    return [[_SPACES.sub(" ", r[a:b]).strip() for a, b in _bounds(rows, gutters)] for r in rows]


def real_gutters(rows: list[str]) -> list[tuple[int, int]]:
    """Shared gutters that separate columns: words on the left, the text beside them aligned on it, and text
    in enough lines on both sides (a word that sticks out of a justified column is not a column of its own)."""
    gutters = [g for g in internal_gutters(rows) if _has_words(rows, g) and _aligned(rows, g)]
    while gutters:
        bounds = _bounds(rows, gutters)
        filled = [sum(1 for r in rows if r[a:b].strip()) for a, b in bounds]
        sparse = [k for k, n in enumerate(filled) if n < 3 and n < 0.15 * len(rows)]
        if not sparse:
            break
        k = sparse[0]  # drop the narrower gutter beside the sparse segment
        beside = [j for j in (k - 1, k) if 0 <= j < len(gutters)]
        del gutters[min(beside, key=lambda j: gutters[j][1] - gutters[j][0])]
    return gutters


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


def _aligned(rows: list[str], gutter: tuple[int, int]) -> bool:
    """True when >= 80% of the rows with text on both sides start their right part at the gutter's end (a
    left-aligned column) or end their left part at its start (right-aligned numbers). Word gaps of justified
    lines that happen to line up are ragged on both edges, so they do not count.

    In blocks of at least TOLERANT_ROWS such rows it is enough that half of them share one edge (within a
    character): pypdf's grid shifts justified lines by a character or two, and paragraph indents, hanging
    references and a table inside the column move the right column's first word; a chance gap between words
    is not blank through that many lines, and its edges are scattered."""
    start, end = gutter
    both = [r for r in rows if r[:start].strip() and r[end:].strip()]
    if len(both) < 2:
        return False
    left = sum(1 for r in both if r[start - 1] != " ")
    right = sum(1 for r in both if r[end] != " ")
    if max(left, right) >= 0.8 * len(both):
        return True
    if len(both) < TOLERANT_ROWS:
        return False
    ends = Counter(len(r[:start].rstrip()) for r in both)
    starts = Counter(len(r) - len(r[end:].lstrip()) for r in both)
    shared = max(max(c[k - 1] + c[k] + c[k + 1] for k in c) for c in (ends, starts))
    return shared >= 0.5 * len(both)


def _has_words(rows: list[str], gutter: tuple[int, int]) -> bool:
    """False when the text left of the gutter is only marks (bullets, dashes): a list, not two columns."""
    return any(any(ch.isalnum() for ch in r[: gutter[0]]) for r in rows)
