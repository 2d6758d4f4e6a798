"""PDF text extraction speed: llmlab's loader (pypdf layout mode + reading order) vs plain pypdf `extract_text`.

Same generated PDFs (two-column prose pages and table pages, made with fpdf2), same process, same threads;
prints pages/s for both and their ratio. Extra PDF paths given on the command line are measured too.

    .venv/bin/python bench/pdf_extract.py [--pages 60] [--repeat 3] [extra.pdf ...]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

WORDS = [
    "the",
    "model",
    "reads",
    "each",
    "page",
    "and",
    "keeps",
    "columns",
    "apart",
    "so",
    "that",
    "answers",
    "cite",
    "the",
    "right",
    "text",
]


def generated_pdf(pages: int) -> bytes:
    """Alternating pages: two columns of prose written line by line across, then a 4-column table."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=9)
    for p in range(pages):
        pdf.add_page()
        pdf.text(10, 12, f"Report page {p + 1}")
        if p % 2 == 0:
            for i in range(45):
                line = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8))
                pdf.text(10, 20 + 5.5 * i, line)
                pdf.text(110, 20 + 5.5 * i, line.upper())
        else:
            pdf.set_xy(10, 20)
            with pdf.table() as table:
                for r in range(30):
                    row = table.row()
                    for c in range(4):
                        row.cell(f"{WORDS[(r + c) % len(WORDS)]} {r}.{c}")
    return bytes(pdf.output())


def plain_pypdf(data: bytes) -> int:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return sum(1 for page in reader.pages if page.extract_text() is not None)


def ours(data: bytes) -> int:
    from llmlab.rag.loaders.pdf import load_pdf

    return int(load_pdf(data, "bench.pdf").metadata["pages"])


def pages_per_second(fn, data: bytes, repeat: int) -> float:
    best = float("inf")
    pages = 0
    for _ in range(repeat):
        start = time.perf_counter()
        pages = fn(data)
        best = min(best, time.perf_counter() - start)
    return pages / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("extra", nargs="*", type=Path)
    args = parser.parse_args()
    inputs = [(f"generated ({args.pages} pages)", generated_pdf(args.pages))]
    inputs += [(str(path), path.read_bytes()) for path in args.extra]
    print(f"{'input':<60} {'ours p/s':>10} {'pypdf p/s':>10} {'ratio':>7}")
    for name, data in inputs:
        a = pages_per_second(ours, data, args.repeat)
        b = pages_per_second(plain_pypdf, data, args.repeat)
        print(f"{name[-60:]:<60} {a:>10.1f} {b:>10.1f} {a / b:>7.2f}")


if __name__ == "__main__":
    main()
