"""PDF loading: pages, two-column reading order, tables, encryption, scans and every kind of bad file.

The PDFs are generated here with fpdf2 (dev extra); pypdf's plain extraction is the foil that shows the
two-column test page really is written line by line across the columns.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from llmlab.errors import DataError
from llmlab.rag.loaders import load_path
from llmlab.rag.loaders.pdf_layout import reading_order

fpdf = pytest.importorskip("fpdf")  # dev extra; the loader itself needs only pypdf

LEFT = [f"Left column line {i} talks about apples." for i in range(1, 7)]
RIGHT = [f"Right column line {i} is all about pears." for i in range(1, 7)]


def new_pdf(title: str | None = None):
    pdf = fpdf.FPDF()
    pdf.set_font("Helvetica", size=11)
    if title:
        pdf.set_title(title)
    return pdf


def save(pdf, path: Path) -> Path:
    path.write_bytes(bytes(pdf.output()))
    return path


def two_column_pdf(path: Path) -> Path:
    """Page 1: a title, two columns written left line then right line (interleaved), then a 3-column table.
    Page 2: blank. Page 3: one paragraph."""
    pdf = new_pdf(title="Fruit report")
    pdf.add_page()
    pdf.text(10, 15, "Quarterly fruit report")
    for i, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        pdf.text(10, 30 + 7 * i, left)
        pdf.text(110, 30 + 7 * i, right)
    pdf.set_xy(10, 90)
    with pdf.table(col_widths=(40, 30, 50)) as table:
        for row in [("Name", "Age", "City"), ("Ann", "31", "Paris"), ("Bob", "45", "Rome")]:
            cells = table.row()
            for cell in row:
                cells.cell(cell)
    pdf.add_page()
    pdf.add_page()
    pdf.set_xy(10, 20)
    pdf.multi_cell(0, 6, "The third page holds a single paragraph of plain text.")
    return save(pdf, path)


def test_pages_columns_and_table(tmp_path):
    path = two_column_pdf(tmp_path / "report.pdf")
    doc = load_path(path)
    assert (doc.source_type, doc.title, doc.metadata) == ("pdf", "Fruit report", {"pages": "3"})
    assert [u.page for u in doc.units] == [1, 3]
    assert doc.units[0].text == "\n".join(
        [
            "Quarterly fruit report",
            "",
            *LEFT,
            "",
            *RIGHT,
            "",
            "Name | Age | City",
            "Ann | 31 | Paris",
            "Bob | 45 | Rome",
        ]
    )
    assert doc.units[1].text == "The third page holds a single paragraph of plain text."
    assert doc.warnings == [f"{path}: no text found on page(s) 2 (images only?)"]
    from pypdf import PdfReader

    plain = PdfReader(path).pages[0].extract_text()
    assert f"{LEFT[0]} {RIGHT[0]}" in plain  # the foil: content-stream order interleaves the columns


def test_encrypted_with_empty_user_password_opens(tmp_path):
    pdf = new_pdf()
    pdf.add_page()
    pdf.text(20, 20, "Readable by anyone")
    pdf.set_encryption(owner_password="owner", user_password="")
    assert load_path(save(pdf, tmp_path / "open.pdf")).units[0].text == "Readable by anyone"


def test_encrypted_with_user_password(tmp_path):
    pdf = new_pdf()
    pdf.add_page()
    pdf.text(20, 20, "Top secret")
    pdf.set_encryption(owner_password="owner", user_password="s3cret")
    path = save(pdf, tmp_path / "locked.pdf")
    with pytest.raises(DataError) as err:
        load_path(path)
    assert (
        str(err.value)
        == f"{path}: the PDF is encrypted with a password; pass it with --pdf-password (pdf_password=)"
    )
    with pytest.raises(DataError, match=r"locked\.pdf: wrong PDF password; check --pdf-password"):
        load_path(path, pdf_password="guess")
    assert load_path(path, pdf_password="s3cret").units[0].text == "Top secret"


def test_image_only_pdf_warns(tmp_path):
    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (60, 20), (200, 30, 30)).save(image, format="PNG")
    pdf = new_pdf()
    pdf.add_page()
    pdf.image(image, x=10, y=10, w=100)
    path = save(pdf, tmp_path / "scan.pdf")
    doc = load_path(path)
    assert doc.units == []
    assert doc.warnings == [
        f"{path}: no text found in the PDF (scanned or image-only pages?); OCR is not supported"
    ]


def test_truncated_pdf(tmp_path):
    data = two_column_pdf(tmp_path / "full.pdf").read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"^{path}: corrupt or truncated PDF: PdfStreamError: "):
        load_path(path)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty (0 bytes); nothing to load"),
        (
            b"\x89PNG\r\n\x1a\n" + bytes(100),
            "not a PDF: the file does not start with %PDF- (it looks like a PNG image)",
        ),
        (
            b"hello, I am text",
            "not a PDF: the file does not start with %PDF- (it starts with b'hello, I am text')",
        ),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, "corrupt or truncated PDF: "),
    ],
)
def test_bad_files_fail_alone_with_the_reason(tmp_path, data, reason):
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        load_path(path)
    assert str(err.value).startswith(f"{path}: {reason}")


def test_size_and_page_limits(tmp_path):
    path = two_column_pdf(tmp_path / "r.pdf")
    with pytest.raises(DataError, match=r"r\.pdf: the file is .* MiB, over the 0\.0 MiB limit"):
        load_path(path, max_bytes=100)
    with pytest.raises(DataError) as err:
        load_path(path, max_pdf_pages=2)
    assert str(err.value) == (
        f"{path}: the PDF has 3 pages, over the 2-page limit; raise it with max_pdf_pages= (CLI: --max-pdf-pages)"
    )


def test_reading_order_keeps_justified_text_and_lists_in_place():
    """Word gaps that line up by chance (ragged on both edges) and bullets are not columns."""
    grid = "\n".join(
        [
            "The   notation   to   access   the   type   is",
            "written  with  a  dot  and   a   name  for  it,",
            "  •   first item",
            "  •   second item",
        ]
    )
    assert reading_order(grid) == (
        "The notation to access the type is\nwritten with a dot and a name for it,\n• first item\n• second item"
    )


class _BrokenPage:
    """A page whose text pypdf cannot extract in either mode (as with some broken font programs)."""

    def extract_text(self, extraction_mode: str = "plain") -> str:
        raise KeyError(f"/Widths ({extraction_mode})")


def test_an_unreadable_page_is_a_warning_naming_both_failures():
    from llmlab.rag.loaders.pdf import page_text

    warnings: list[str] = []
    assert page_text(_BrokenPage(), 4, warnings) == ""
    assert warnings == [
        "page 4: text extraction failed (KeyError: '/Widths (plain)'; layout mode: KeyError: '/Widths (layout)')"
    ]
