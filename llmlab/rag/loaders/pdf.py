"""PDF files with pypdf: one unit per page (1-based page numbers), columns and tables in reading order.

    bytes -> checks (%PDF- header, encryption: empty password, else `password`; page limit)
          -> per page: pypdf layout-mode text runs -> footnotes apart (pdf_layout.footnotes) -> a grid of the
             running text and one of the footnotes -> pdf_layout.reading_order each, the footnotes after
             (plain mode if layout fails)
          -> the document's running head and foot dropped (pdf_layout.without_running_lines)
          -> pages without text (ocr="auto") or every page (ocr="always"): OCR (ocr.py, the `ocr` extra)

pypdf is pure Python and installs everywhere; its layout mode keeps each text run at its place on the page,
from which `pdf_layout` reads columns one after the other and tables row by row (bench/pdf_extract.py
measures the cost against plain `extract_text`). Pages without a text layer (scans) are read by OCR when the
`ocr` extra is installed (their numbers go to `metadata["ocr_pages"]`); pages still without text are reported
in `Document.warnings`. Corrupt, truncated and mislabelled files raise `DataError` naming the
file. pypdf's own log warnings while reading (e.g. a repaired cross-reference table) become warnings too.
Tests: tests/rag/test_loaders_pdf.py
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmlab.errors import DataError, MissingDependencyError
from llmlab.rag.loaders.ocr import OcrMode, check_ocr_mode
from llmlab.rag.loaders.pdf_layout import footnotes, reading_order, without_running_lines
from llmlab.rag.loaders.source import content_hash
from llmlab.rag.types import Document, Unit


def load_pdf(
    data: bytes,
    source: str,
    *,
    password: str | None = None,
    max_pages: int = 5000,
    ocr: OcrMode = "auto",
) -> Document:
    """A PDF Document with one unit per page that has text.

    Args:
        data: the file's bytes.
        source: path used in messages and as `Document.source`.
        password: user password for an encrypted file (the empty password is tried first).
        max_pages: refuse files with more pages than this.
        ocr: "auto" reads pages without a text layer by OCR when the `ocr` extra is installed (else a
            warning says how to install it), "always" reads every page by OCR, "never" never does.

    Raises:
        DataError: not a PDF, truncated or corrupt, encrypted without the right password, too many pages.
        MissingDependencyError: ocr="always" without the `ocr` extra.
    """
    check_ocr_mode(ocr)
    try:
        import pypdf
    except ImportError as err:
        raise MissingDependencyError("pypdf", "rag") from err
    if b"%PDF-" not in data[:1024]:  # the header may follow up to 1 KiB of junk (ISO 32000-1, annex H)
        raise DataError(f"not a PDF: the file does not start with %PDF- ({_describe(data)})", location=source)
    with _pypdf_warnings() as logged:
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            used_password = _unlock(reader, source, password)
            pages = _pages(reader, source, max_pages, logged)
            title = _title(reader)
        except DataError:
            raise
        except Exception as err:  # a broken file can fail anywhere in pypdf; each file must fail alone, named
            raise DataError(
                f"corrupt or truncated PDF: {type(err).__name__}: {err}", location=source
            ) from err
    read, ocr_note = _ocr(data, pages, ocr, used_password, logged)
    pages = without_running_lines([read.get(n, text) for n, text in enumerate(pages, start=1)])
    units = [Unit(text=text, page=n) for n, text in enumerate(pages, start=1) if text.strip()]
    warnings = [f"{source}: {msg}" for msg in dict.fromkeys(logged)]
    warnings += _empty_page_warnings(source, pages, ocr_note)
    metadata = {"pages": str(len(pages))}
    if read:
        metadata["ocr_pages"] = ",".join(str(n) for n in sorted(read))
    return Document(
        source=source,
        source_type="pdf",
        title=title or Path(source).stem,
        units=units,
        content_hash=content_hash(data),
        warnings=warnings,
        metadata=metadata,
    )


def _ocr(
    data: bytes, pages: list[str], mode: OcrMode, password: str | None, warnings: list[str]
) -> tuple[dict[int, str], str]:
    """(page number -> OCR text, a note for the empty-page warning) for the pages `mode` selects: every page
    for "always"; for "auto", pages without text that show an image (a blank page is not worth OCR)."""
    from llmlab.rag.loaders.ocr import ocr_pdf_pages

    if mode == "never":
        return {}, "; OCR is off (--ocr never)"
    numbers = [n for n, text in enumerate(pages, start=1) if mode == "always" or not text.strip()]
    if not numbers:
        return {}, ""
    try:
        return ocr_pdf_pages(data, numbers, password, images_only=mode == "auto"), ""
    except MissingDependencyError:
        if mode == "always":
            raise
        return {}, "; install OCR to read scans: pip install 'llmlab[ocr]'"
    except Exception as err:  # PDFium may refuse a page pypdf read; the text layer is still worth keeping
        warnings.append(f"OCR failed ({type(err).__name__}: {err})")
        return {}, ""


def _unlock(reader: Any, source: str, password: str | None) -> str | None:
    """Decrypt with the empty password, else `password`; a clear error naming --pdf-password otherwise.
    Returns the password that opened the file (None when it is not encrypted)."""
    if not reader.is_encrypted:
        return None
    import pypdf

    try:
        if reader.decrypt(""):
            return ""
        if password is None:
            raise DataError(
                "the PDF is encrypted with a password; pass it with --pdf-password (pdf_password=)",
                location=source,
            )
        if not reader.decrypt(password):
            raise DataError("wrong PDF password; check --pdf-password (pdf_password=)", location=source)
        return password
    except pypdf.errors.DependencyError as err:
        raise DataError(
            "the PDF uses AES encryption, which needs the cryptography package: "
            f"pip install 'llmlab[rag]' (or pip install cryptography) ({err})",
            location=source,
        ) from err


def _pages(reader: Any, source: str, max_pages: int, warnings: list[str]) -> list[str]:
    count = len(reader.pages)
    if count > max_pages:
        raise DataError(
            f"the PDF has {count} pages, over the {max_pages}-page limit; raise it with max_pdf_pages= "
            "(CLI: --max-pdf-pages)",
            location=source,
        )
    return [page_text(page, n, warnings) for n, page in enumerate(reader.pages, start=1)]


def page_text(page: Any, number: int = 0, warnings: list[str] | None = None) -> str:
    """One page's text in reading order (layout mode read by `reading_order`; plain mode if layout fails)."""
    try:
        text, notes = _layout_grids(page)
        return "\n\n".join(t for t in (reading_order(text), reading_order(notes)) if t)
    except (
        Exception
    ) as err:  # pypdf's layout mode fails on some fonts and matrices; plain mode may still work
        layout_error = f"{type(err).__name__}: {err}"
    try:
        return str(page.extract_text() or "")
    except Exception as err:  # one unreadable page must not lose the others
        if warnings is not None:
            warnings.append(
                f"page {number}: text extraction failed ({type(err).__name__}: {err}; layout mode: {layout_error})"
            )
        return ""


def _layout_grids(page: Any) -> tuple[str, str]:
    """pypdf's layout-mode grid of a page's running text and, apart, of its footnotes (pdf_layout.footnotes).

    The steps of pypdf's `PageObject._layout_mode_text` with its defaults, the text runs split in between;
    where that part of pypdf (not public API) differs, the page's whole layout-mode text and no footnotes."""
    try:
        from pypdf._text_extraction import _layout_mode as layout
        from pypdf.generic import ArrayObject, ContentStream, StreamObject

        fonts = page._layout_mode_fonts()
        for font in fonts.values():
            _narrow_space(font)
    except (ImportError, AttributeError):
        return str(page.extract_text(extraction_mode="layout")), ""
    contents = page.get("/Contents")
    if contents is not None:
        contents = contents.get_object()
    if not isinstance(contents, (ArrayObject, StreamObject)):
        return "", ""
    runs = layout.text_show_operations(
        iter(ContentStream(contents, page.pdf, "bytes").operations), fonts, True
    )
    if not runs:
        return "", ""
    text, notes = footnotes(runs)
    width = layout.fixed_char_width(runs, 1.25)
    return tuple(  # type: ignore[return-value]
        layout.fixed_width_page(layout.y_coordinate_groups(part), width, True, 1) if part else ""
        for part in (text, notes)
    )


MAX_SPACE = 333
"""Widest word space, in thousandths of an em, believed of a proportional font (see `_narrow_space`)."""


def _narrow_space(font: Any) -> None:
    """Cap a proportional font's space width at MAX_SPACE (a third of an em; Times has 250, Helvetica 278).

    pypdf's layout mode puts a space between two pieces of text when the gap is at least half the font's space
    width. A subset font without a real space (LuaLaTeX's, which set word gaps by positioning alone) may
    report another glyph's width (444 for TeX Gyre Termes' "e"), so the gaps of justified lines stay under
    that and words run together ("fluencyandliteracy"). Monospaced and Type 3 fonts are left alone."""
    widths = font.character_widths
    if font.sub_type == "Type3" or len({w for k, w in widths.items() if k != "default" and w}) < 2:
        return
    if widths.get(font.space_char, 0) > MAX_SPACE:
        font.character_widths = {**widths, font.space_char: MAX_SPACE}
    if font.space_width > MAX_SPACE:
        font.space_width = MAX_SPACE


def _title(reader: Any) -> str:
    meta = reader.metadata
    title = meta.title if meta is not None else None
    return " ".join(str(title).split()) if title else ""


def _empty_page_warnings(source: str, pages: list[str], note: str) -> list[str]:
    empty = [str(n) for n, text in enumerate(pages, start=1) if not text.strip()]
    if not empty:
        return []
    if len(empty) == len(pages):
        return [f"{source}: no text found in the PDF{note} (scanned or image-only pages?)"]
    return [f"{source}: no text found on page(s) {', '.join(empty)}{note} (images only?)"]


def _describe(data: bytes) -> str:
    """What the bytes look like instead, for the not-a-PDF message."""
    head = data[:8]
    for magic, name in (
        (b"PK\x03\x04", "a ZIP archive"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
    ):
        if head.startswith(magic):
            return f"it looks like {name}"
    if b"\x00" in data[:1024]:
        return "it looks like binary data"
    return f"it starts with {data[:16]!r}"


@contextmanager
def _pypdf_warnings() -> Iterator[list[str]]:
    """Collect what pypdf logs at WARNING while reading (repairs, broken objects)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("pypdf")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
