"""Word .docx files (python-docx): one unit per section, headings taken from paragraph styles.

A paragraph styled "Heading N" (or a style based on one) opens a section at level N; the heading path is
built as for Markdown. Paragraphs and tables are read in document order; table rows become lines of cells
joined by " | " (a merged cell counts once); paragraphs in a "List ..." style start with "- ". The title is
the document property, else the first "Title"-styled paragraph, else the file name. Headers, footers,
comments and text boxes are not read.
Tests: tests/rag/test_loaders_docx.py
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from llmlab.errors import DataError, MissingDependencyError
from llmlab.rag.loaders.source import content_hash
from llmlab.rag.types import Document, Unit

_HEADING = re.compile(r"heading ([1-9])", re.IGNORECASE)


def load_docx(data: bytes, source: str) -> Document:
    """A Document from a .docx file's bytes.

    Raises:
        DataError: not a .docx (an old binary .doc, another ZIP, a truncated file).
    """
    try:
        import docx
    except ImportError as err:
        raise MissingDependencyError("python-docx", "rag") from err
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise DataError("an old binary Word .doc file; save it as .docx and load that", location=source)
    try:
        document = docx.Document(io.BytesIO(data))
        units, style_title = _sections(document)
        prop_title = document.core_properties.title or ""
    except Exception as err:  # python-docx raises zipfile, KeyError, lxml errors on broken files
        raise DataError(f"not a valid .docx file ({type(err).__name__}: {err})", location=source) from err
    warnings = [] if units else [f"{source}: no text found in the document"]
    return Document(
        source=source,
        source_type="docx",
        title=prop_title.strip() or style_title or Path(source).stem,
        units=units,
        content_hash=content_hash(data),
        warnings=warnings,
    )


def _sections(document: Any) -> tuple[list[Unit], str]:
    """(units by heading, text of the first Title-styled paragraph)."""
    units: list[Unit] = []
    stack: list[tuple[int, str]] = []
    blocks: list[str] = []
    title = ""

    def close() -> None:
        body = "\n\n".join(blocks).strip()
        if body and (not stack or body != stack[-1][1]):
            units.append(Unit(text=body, heading_path=tuple(name for _, name in stack)))

    for block in document.iter_inner_content():
        if not hasattr(block, "rows"):
            text = block.text.strip()
            level = heading_level(block.style)
            if level == 0 and text and not title and _style_names(block.style)[:1] == ["title"]:
                title = text
                continue
            if level and text:
                close()
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, text))
                blocks = [text]
            elif text:
                is_list = any(name.startswith("list") for name in _style_names(block.style))
                blocks.append(("- " + text) if is_list else text)
        else:
            blocks.append(table_text(block))
    close()
    return units, title


def heading_level(style: Any) -> int:
    """N for a "Heading N" style or a style based on one; 0 otherwise."""
    for name in _style_names(style):
        match = _HEADING.fullmatch(name)
        if match:
            return int(match.group(1))
    return 0


def _style_names(style: Any) -> list[str]:
    """Lower-case names of a style and the styles it is based on (nearest first)."""
    names: list[str] = []
    while style is not None and len(names) < 10:
        names.append((style.name or "").lower())
        style = style.base_style
    return names


def table_text(table: Any) -> str:
    """Rows as lines of " | "-joined cells; a merged cell (repeated by python-docx) appears once."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
