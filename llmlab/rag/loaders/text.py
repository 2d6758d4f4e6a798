"""Plain text files: decoded (UTF-8, else Windows-1252), one unit holding the whole text.

Paragraph and sentence boundaries are left to the chunker, which prefers them when it cuts.
Tests: tests/rag/test_loaders.py
"""

from __future__ import annotations

from pathlib import Path

from llmlab.errors import DataError
from llmlab.rag.loaders.source import content_hash, decode_text, looks_binary
from llmlab.rag.types import Document, Unit


def load_text(data: bytes, source: str) -> Document:
    """A text Document from raw bytes; `source` names the file in errors and in the result.

    Raises:
        DataError: the bytes are binary (a NUL byte without a UTF-16/32 byte-order mark).
    """
    if looks_binary(data):
        raise DataError("binary data, not text (it holds NUL bytes); check the file type", location=source)
    text, encoding = decode_text(data)
    warnings = []
    if encoding not in ("utf-8", "utf-8-sig", "ascii"):
        warnings.append(f"{source}: not valid UTF-8; decoded as {encoding}")
    text = normalize_newlines(text)
    units = [Unit(text=text)] if text.strip() else []
    if not units:
        warnings.append(f"{source}: no text found (the file holds only whitespace)")
    return Document(
        source=source,
        source_type="text",
        title=Path(source).stem,
        units=units,
        content_hash=content_hash(data),
        warnings=warnings,
        metadata={"encoding": encoding},
    )


def normalize_newlines(text: str) -> str:
    """Windows and old-Mac line ends as "\\n", so that offsets and boundaries mean the same everywhere."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
