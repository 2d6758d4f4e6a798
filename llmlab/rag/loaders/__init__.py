"""Loading documents: `load_path` for one file (format by extension, else by content), `iter_files` for folders.

    path -> read_source (size checks) -> LOADERS[format](bytes, source) -> Document(units)

Each bad file fails alone with a `DataError` naming the file and the reason, so a batch can go on without it.
Websites are crawled by `crawl` (web.py). Tests: tests/rag/test_loaders.py
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmlab.errors import DataError
from llmlab.rag.loaders.source import DEFAULT_MAX_BYTES, read_source
from llmlab.rag.loaders.web import crawl
from llmlab.rag.types import Document, SourceType

__all__ = ["EXTENSIONS", "FoundFile", "crawl", "iter_files", "load_path", "sniff"]

EXTENSIONS: dict[str, SourceType] = {
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".docx": "docx",
}
"""File extensions (lower case) that `iter_files` picks up, and the loader each one goes to."""


def load_path(
    path: str | os.PathLike[str],
    *,
    pdf_password: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pdf_pages: int = 5000,
    ocr: str = "auto",
) -> Document:
    """Load one file into a Document; the format comes from the extension, or from the content if unknown.

    Args:
        path: the file; `Document.source` is its resolved absolute path.
        pdf_password: password for encrypted PDFs (the empty password is always tried first).
        max_bytes: refuse files larger than this (default 64 MiB).
        max_pdf_pages: refuse PDFs with more pages than this.
        ocr: OCR for PDF pages: "auto" (pages without a text layer, when the `ocr` extra is installed),
            "always" (every page) or "never".

    Raises:
        DataError: "<file>: <reason>" for a missing, empty, too large, truncated, corrupt, encrypted or
            mislabelled file.
    """
    file = Path(path).expanduser().resolve()
    data = read_source(file, max_bytes)
    source = str(file)
    kind = EXTENSIONS.get(file.suffix.lower()) or sniff(data)
    if kind == "pdf":
        from llmlab.rag.loaders.pdf import load_pdf

        return load_pdf(data, source, password=pdf_password, max_pages=max_pdf_pages, ocr=ocr)  # type: ignore[arg-type]
    return _LOADERS[kind](data, source)


def sniff(data: bytes) -> SourceType:
    """The format of a file with an unknown extension, from its first bytes (text when nothing else fits)."""
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") and b"word/" in data[:65536]:
        return "docx"
    lowered = head[:256].lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return "html"
    return "text"


def _html(data: bytes, source: str) -> Document:
    from llmlab.rag.loaders.html import load_html

    return load_html(data, source)


def _markdown(data: bytes, source: str) -> Document:
    from llmlab.rag.loaders.markdown import load_markdown

    return load_markdown(data, source)


def _text(data: bytes, source: str) -> Document:
    from llmlab.rag.loaders.text import load_text

    return load_text(data, source)


def _docx(data: bytes, source: str) -> Document:
    from llmlab.rag.loaders.docx import load_docx

    return load_docx(data, source)


_LOADERS: dict[str, Callable[[bytes, str], Document]] = {
    "html": _html,
    "markdown": _markdown,
    "text": _text,
    "docx": _docx,
}


@dataclass(frozen=True)
class FoundFile:
    """A file met while walking the inputs: to load (`skipped` is None), or skipped with the reason."""

    path: Path
    skipped: str | None = None


def iter_files(
    paths: Iterable[str | os.PathLike[str]],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Iterator[FoundFile]:
    """Walk files and folders (recursively, sorted) and yield each file to load or skipped.

    A file named directly is always yielded to load (its format is sniffed if the extension is unknown).
    In folders: hidden files and folders (name starting with ".") are skipped and reported once, files
    with an extension outside `EXTENSIONS` are reported as skipped; files not matching `include` (when
    given) or matching `exclude` are left out silently. Globs match the path relative to the folder
    given (`docs/*.md`, `**/drafts/*`) or the bare file name (`*.md`).

    Raises:
        DataError: a path that does not exist.
    """
    for raw in paths:
        root = Path(raw).expanduser()
        if root.is_file():
            yield FoundFile(root.resolve())
        elif root.is_dir():
            yield from _walk(root, tuple(include), tuple(exclude))
        else:
            raise DataError("no such file or folder; check the path", location=str(root))


def _walk(root: Path, include: tuple[str, ...], exclude: tuple[str, ...]) -> Iterator[FoundFile]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(d for d in dirs if d.startswith(".")):
            yield FoundFile((here / name).resolve(), skipped="hidden folder")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if not _selected(rel, name, include, exclude):
                continue
            if name.startswith("."):
                yield FoundFile(path.resolve(), skipped="hidden file")
            elif path.suffix.lower() not in EXTENSIONS:
                yield FoundFile(path.resolve(), skipped=f"unsupported extension {path.suffix or '(none)'!r}")
            else:
                yield FoundFile(path.resolve())


def _selected(rel: str, name: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    def matches(pattern: str) -> bool:
        if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(rel, pattern):
            return True
        # "**/x" also matches "x" at the top level, as in gitignore and pathlib globs
        return pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:])

    if include and not any(matches(p) for p in include):
        return False
    return not any(matches(p) for p in exclude)
