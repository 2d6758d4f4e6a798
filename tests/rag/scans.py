"""Scanned PDFs rendered from known text, and the character error rate to score what OCR reads from them.

A page is written with fpdf2's built-in fonts (no system font needed), rasterised with PDFium, optionally
degraded like a real scan (a slight tilt, blur, sensor noise, JPEG), and embedded as the only content of a new
page: an image-only PDF whose text is known. bench/loaders.py uses the same pages.
"""

from __future__ import annotations

import io
import random

SCAN_LINES = [
    "Scanned documents reach us as pictures of pages.",
    "The loader finds no text layer and reads the image instead.",
    "Invoice number 4711 was paid on 12 March 2024 by Anna Berg.",
    "Quarterly revenue grew by 7.5 percent to 3,210 euros.",
    "Optical character recognition turns pixels back into words.",
    "Each line of this page is compared with what the engine reads.",
]


def text_pdf(lines: list[str], size: tuple[float, float] = (150.0, 80.0), font: str = "Helvetica") -> bytes:
    """A one-page PDF (size in mm) with `lines` written from the top left, 6.5 mm apart."""
    from fpdf import FPDF

    pdf = FPDF(format=size)
    pdf.set_font(font, size=11)
    pdf.add_page()
    for i, line in enumerate(lines):
        pdf.text(8, 12 + 6.5 * i, line)
    return bytes(pdf.output())


def scanned_pdf(source: bytes, dpi: int = 200, degrade: bool = False, seed: int = 0) -> bytes:
    """Each page of `source` rasterised at `dpi` (grey), optionally degraded, as an image-only PDF."""
    import numpy as np
    import pypdfium2
    from fpdf import FPDF
    from PIL import Image, ImageFilter

    out = FPDF(unit="pt")
    document = pypdfium2.PdfDocument(source)
    for page in document:
        width, height = page.get_size()
        image = page.render(scale=dpi / 72).to_pil().convert("L")
        if degrade:
            rng = np.random.default_rng(seed)
            image = image.rotate(0.6, fillcolor=255, resample=Image.Resampling.BICUBIC)
            image = image.filter(ImageFilter.GaussianBlur(0.6))
            noisy = np.asarray(image).astype(np.int16) + rng.normal(0, 12, image.size[::-1]).astype(np.int16)
            image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG" if degrade else "PNG", quality=60)
        out.add_page(format=(width, height))
        out.image(buffer, x=0, y=0, w=width, h=height)
    document.close()
    return bytes(out.output())


def dense_lines(count: int = 40, words_per_line: int = 11, seed: int = 0) -> list[str]:
    """Lines of varied English words (a fixed vocabulary shuffled by `seed`), for a full scanned page."""
    text = (
        "the model reads each page and keeps columns apart so that answers cite the right text while a "
        "scanner turns paper into pixels which recognition turns back into words numbers like 2024 and 3.5 "
        "appear in invoices reports letters manuals receipts tables figures captions headings quarterly revenue "
        "grew boiler pressure gauge radiator printer duplex unit paper jam water cycle"
    )
    vocabulary = text.split()
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocabulary) for _ in range(words_per_line)) for _ in range(count)]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance / reference length, on whitespace-normalised text."""
    a, b = " ".join(reference.split()), " ".join(hypothesis.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / max(len(a), 1)
