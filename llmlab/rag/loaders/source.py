"""Reading a source's bytes safely, hashing them, and decoding text whose encoding is not declared.

Every loader starts here, so that the checks every format shares (missing file, a folder, zero bytes, over
the size limit) give the same precise `DataError`, naming the file and how to fix the problem.
Tests: tests/rag/test_loaders.py
"""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

from llmlab.errors import DataError

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Largest file (or web page) a loader reads: 64 MiB. Raise it with `max_bytes=` / `--max-file-mb`."""

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_source(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of `path`, after checking it is a readable, non-empty file of at most `max_bytes`.

    Raises:
        DataError: naming the file and the reason (missing, a folder, empty, too large, unreadable).
    """
    if not path.exists():
        raise DataError("file not found; check the path", location=str(path))
    if not path.is_file():
        raise DataError(
            "not a regular file (a folder or a device); pass a file or a folder", location=str(path)
        )
    size = path.stat().st_size
    check_size(size, str(path), max_bytes)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", location=str(path)) from err
    check_size(len(data), str(path), max_bytes)
    return data


def check_size(size: int, source: str, max_bytes: int) -> None:
    """Refuse empty sources and sources over the limit, with the fix in the message."""
    if size == 0:
        raise DataError("the file is empty (0 bytes); nothing to load", location=source)
    if size > max_bytes:
        raise DataError(
            f"the file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.1f} MiB limit; "
            "raise the limit with max_bytes= (CLI: --max-file-mb) or split the file",
            location=source,
        )


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest of the raw bytes (the re-ingest identity of a source's content)."""
    return hashlib.sha256(data).hexdigest()


def looks_binary(data: bytes) -> bool:
    """True when the first 8 KiB hold a NUL byte and no UTF-16/32 byte-order mark: not a text file."""
    head = data[:8192]
    return b"\x00" in head and not any(head.startswith(bom) for bom, _ in _BOMS)


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode bytes to text; returns (text, encoding used).

    Order: a byte-order mark; the declared encoding (HTTP header or HTML meta) if Python knows it and it decodes cleanly; UTF-8; UTF-8
    with replacement characters when a few broken bytes sit among ten times as many valid UTF-8 characters
    (one pasted Latin-1 byte must not turn a whole UTF-8 page into mojibake); then Windows-1252, the encoding
    browsers assume for undeclared Western pages (a superset of the printable Latin-1 range); Latin-1 last,
    which decodes any byte.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name, errors="replace"), name
    candidates = [declared] if declared else []
    candidates.append("utf-8")
    for name in candidates:
        try:
            return data.decode(_python_codec(name)), _python_codec(name)
        except (LookupError, UnicodeDecodeError):
            continue
    text = data.decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    if sum(1 for ch in text if ord(ch) > 127) - broken >= 10 * broken:
        return text, "utf-8"
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _python_codec(name: str) -> str:
    """Python's name for an encoding label; browsers treat iso-8859-1 and us-ascii labels as windows-1252."""
    label = name.strip().lower()
    if label in ("iso-8859-1", "iso8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
        return "cp1252"
    return codecs.lookup(label).name
