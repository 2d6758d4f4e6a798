"""OCR for PDF pages without a text layer (scans): PDFium renders the page, RapidOCR reads it, and the text
boxes are laid on a character grid that `pdf_layout.reading_order` reads like any other page.

    page -> pypdfium2 render (longer side RENDER_PX pixels, at most MAX_DPI)
         -> RapidOCR: PP-OCRv6 small text detection (DB, Liao et al., AAAI 2020) + PP-OCRv6 small
            recognition (SVTR-style CTC), ONNX models shipped inside the rapidocr wheel and loaded by path, so
            nothing is ever downloaded. The line-direction classifier is off: on a noisy scan it turned upright
            lines upside down (character error rate 6% with it, 0% without)
         -> boxes grouped into lines (vertical overlap), lines placed on a grid (column = x / character
            width, a blank row where the gap between lines is over 1.6x the usual line pitch)
         -> reading_order (columns one after the other, tables row by row)

Why RapidOCR rather than Tesseract (Debian's tesseract-ocr 5.3): both run offline on the CPU; RapidOCR installs
with pip on every OS (`pip install 'llmlab[ocr]'`, its models inside the wheel) where Tesseract needs a system
package, and it reads Chinese and other scripts with the same models. On a noisy 40-line scan rendered from known
text its character error rate was 0.0% against Tesseract's 0.2% (l/I confusions), at about the same speed in the
same run. docs/rag-documents.md has the figures; bench/loaders.py measures pages per second.
Tests: tests/rag/test_loaders_ocr.py
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from llmlab.errors import ConfigError, MissingDependencyError
from llmlab.rag.loaders.pdf_layout import reading_order

OcrMode = Literal["auto", "always", "never"]
OCR_MODES: tuple[str, ...] = ("auto", "always", "never")

RENDER_PX = 2000
"""Longer side of the rendered page in pixels (about 170 dpi for A4): the detector sees the page unscaled."""
MAX_DPI = 200
"""Small pages are not rendered finer than this."""
PARAGRAPH_GAP = 1.6
"""A gap between two lines larger than this many usual line pitches starts a new paragraph (a blank row)."""

_MODELS = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}


def check_ocr_mode(mode: str) -> None:
    """Raise ConfigError naming --ocr for a mode outside auto, always, never."""
    if mode not in OCR_MODES:
        raise ConfigError(f"--ocr must be one of {', '.join(OCR_MODES)}, got {mode!r}")


@functools.lru_cache(maxsize=1)
def engine() -> Any:
    """The RapidOCR engine with the models of its own wheel (created once per process).

    Raises:
        MissingDependencyError: rapidocr, onnxruntime or pypdfium2 is not installed, or the wheel lacks its models.
    """
    for module in ("rapidocr", "onnxruntime", "pypdfium2"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "ocr")
    spec = importlib.util.find_spec("rapidocr")
    assert spec is not None and spec.origin is not None
    folder = Path(spec.origin).parent / "models"
    paths = {task: folder / name for task, name in _MODELS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:  # rapidocr would download them; llmlab never downloads at run time
        raise MissingDependencyError(f"rapidocr's shipped models ({', '.join(missing)})", "ocr")
    from rapidocr import RapidOCR

    params: dict[str, Any] = {
        "Global.log_level": "critical",
        "Global.use_cls": False,
        "Det.limit_type": "max",
    }
    params["Det.limit_side_len"] = RENDER_PX
    params.update({f"{task}.model_path": str(path) for task, path in paths.items()})
    return RapidOCR(params=params)


def ocr_pdf_pages(
    data: bytes, numbers: Sequence[int], password: str | None = None, *, images_only: bool = False
) -> dict[int, str]:
    """Text read by OCR from the given 1-based pages of a PDF, in reading order (one entry per page read).

    With `images_only`, pages that hold no image are left out (nothing there for OCR to read).

    Raises:
        MissingDependencyError: the `ocr` extra is not installed.
    """
    if not numbers:
        return {}
    ocr = engine()
    import numpy as np
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument(data, password=password)
    texts: dict[int, str] = {}
    try:
        for number in numbers:
            page = document[number - 1]
            if images_only and not any(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)):
                page.close()
                continue
            width, height = page.get_size()  # points (1/72 inch)
            scale = min(RENDER_PX / max(width, height, 1.0), MAX_DPI / 72)
            image = page.render(scale=scale).to_pil().convert("RGB")
            result = ocr(np.asarray(image))
            boxes = [] if result.boxes is None else [box.tolist() for box in result.boxes]
            texts[number] = reading_order(boxes_to_grid(boxes, list(result.txts or ())))
            page.close()
    finally:
        document.close()
    return texts


def boxes_to_grid(boxes: Sequence[Sequence[Sequence[float]]], texts: Sequence[str]) -> str:
    """Lay OCR text boxes (four (x, y) corners each, pixels) on a character grid, as pypdf's layout mode does.

    Boxes whose vertical centres lie within half a box height of each other form a line; each box starts at
    the column its left edge gives (at least one space after the previous box); a line gap over
    PARAGRAPH_GAP times the median pitch becomes a blank row. Boxes without a letter or digit are dropped: on
    scans they are rules, specks and picture edges read as "_" or "-".
    """
    items = []
    for box, text in zip(boxes, texts, strict=True):
        text = " ".join(text.split())
        if not any(ch.isalnum() for ch in text):
            continue
        xs, ys = [p[0] for p in box], [p[1] for p in box]
        items.append((min(xs), max(xs), min(ys), max(ys), text))
    if not items:
        return ""
    char_width = statistics.median((x1 - x0) / len(t) for x0, x1, _, _, t in items) or 1.0
    height = statistics.median(y1 - y0 for _, _, y0, y1, _ in items) or 1.0
    lines: list[list[tuple[float, float, float, float, str]]] = []
    for item in sorted(items, key=lambda b: (b[2] + b[3]) / 2):
        centre = (item[2] + item[3]) / 2
        if lines and abs(centre - _centre(lines[-1])) <= height / 2:
            lines[-1].append(item)
        else:
            lines.append([item])
    centres = [_centre(line) for line in lines]
    gaps = [b - a for a, b in itertools.pairwise(centres)]
    pitch = statistics.median(gaps) if gaps else height
    rows: list[str] = []
    for k, line in enumerate(lines):
        if k and gaps[k - 1] > PARAGRAPH_GAP * pitch:
            rows.append("")
        row = ""
        for x0, _, _, _, text in sorted(line):
            column = max(round(x0 / char_width), len(row) + 1 if row else 0)
            row = row.ljust(column) + text
        rows.append(row)
    return "\n".join(rows)


def _centre(line: list[tuple[float, float, float, float, str]]) -> float:
    return statistics.fmean((b[2] + b[3]) / 2 for b in line)
