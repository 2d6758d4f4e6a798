"""OCR of scanned PDFs (issue 8: "no text found ... OCR is not supported"): pages rendered from known text,
read back with RapidOCR, scored by character error rate; the --ocr modes; the box-to-grid reading order."""

from __future__ import annotations

import fpdf  # noqa: F401  (the scans are drawn with it: a missing fpdf fails the run)
import pytest
from scans import SCAN_LINES, cer, dense_lines, scanned_pdf, text_pdf

from llmlab.errors import ConfigError, MissingDependencyError
from llmlab.rag.ingest import IngestConfig
from llmlab.rag.loaders import load_path
from llmlab.rag.loaders.ocr import boxes_to_grid
from llmlab.rag.loaders.pdf_layout import reading_order


def test_scanned_pdf_is_read_by_ocr(tmp_path):
    """A small image-only page: no text layer, OCR on by default; CER against the known text <= 2%."""
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf(text_pdf(SCAN_LINES, size=(130.0, 50.0))))
    doc = load_path(path)
    assert (doc.warnings, doc.metadata) == ([], {"pages": "1", "ocr_pages": "1"})
    assert [u.page for u in doc.units] == [1]
    error = cer("\n".join(SCAN_LINES), doc.units[0].text)
    assert error <= 0.02, (error, doc.units[0].text)
    assert "Invoice number 4711" in doc.units[0].text


def test_ocr_never_and_a_missing_engine_leave_a_warning_that_says_why(tmp_path, monkeypatch):
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf(text_pdf(SCAN_LINES[:2])))
    doc = load_path(path, ocr="never")
    assert doc.units == []
    assert doc.warnings == [
        f"{path}: no text found in the PDF; OCR is off (--ocr never) (scanned or image-only pages?)"
    ]

    def missing():
        raise MissingDependencyError("rapidocr", "ocr")

    monkeypatch.setattr("llmlab.rag.loaders.ocr.engine", missing)
    doc = load_path(path)
    assert doc.warnings == [
        f"{path}: no text found in the PDF; install OCR to read scans: pip install 'llmlab[ocr]' "
        "(scanned or image-only pages?)"
    ]
    with pytest.raises(MissingDependencyError, match=r"pip install 'llmlab\[ocr\]'"):
        load_path(path, ocr="always")


def test_ocr_mode_is_validated():
    with pytest.raises(ConfigError, match=r"--ocr must be one of auto, always, never, got 'sometimes'"):
        IngestConfig(ocr="sometimes")  # type: ignore[arg-type]


def test_boxes_on_a_grid_keep_two_columns_and_paragraphs_apart():
    """Hand-made OCR boxes (10 px per character, 30 px lines): two columns 400 px apart, then after a gap of
    three lines a full-width paragraph. reading_order must read the left column, then the right one."""

    def box(x, y, text):
        return [[x, y], [x + 10 * len(text), y], [x + 10 * len(text), y + 20], [x, y + 20]], text

    left = ["the left column opens", "and goes on down here", "to end its sentence."]
    right = ["The right column is", "read only after the", "left one has ended."]
    items = [box(100, 100 + 30 * i, t) for i, t in enumerate(left)]
    items += [box(500, 101 + 30 * i, t) for i, t in enumerate(right)]
    items.append(box(100, 280, "A closing paragraph spans the whole width of the page, under both columns."))
    grid = boxes_to_grid([b for b, _ in items], [t for _, t in items])
    assert reading_order(grid) == "\n".join(
        [*left, "", *right, "", "A closing paragraph spans the whole width of the page, under both columns."]
    )
    assert boxes_to_grid([], []) == ""


@pytest.mark.slow
def test_noisy_full_page_scan_and_ocr_always(tmp_path):
    """A tilted, blurred, noisy JPEG scan of a 40-line page: CER <= 1% (0.0% measured). --ocr always also reads
    a page that has a text layer (and replaces it)."""
    lines = dense_lines()
    path = tmp_path / "noisy.pdf"
    path.write_bytes(scanned_pdf(text_pdf(lines, size=(210.0, 297.0), font="Times"), degrade=True))
    doc = load_path(path)
    error = cer("\n".join(lines), doc.units[0].text)
    assert error <= 0.01, error
    text = tmp_path / "text.pdf"
    text.write_bytes(text_pdf(SCAN_LINES))
    doc = load_path(text, ocr="always")
    assert doc.metadata["ocr_pages"] == "1"
    assert cer("\n".join(SCAN_LINES), doc.units[0].text) <= 0.02
