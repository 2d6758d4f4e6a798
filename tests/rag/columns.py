"""Multi-column PDF pages rendered from known sentences (fpdf2), and the share of sentences a reader keeps whole.

A page has a title across the top, then two or three columns of paragraphs; figures (a grey box)
with a caption under them sit inside a column, beside the text of the neighbouring columns; some pages end
with a full-width table. Every sentence is unique, so `sentences_kept` can look each one up in the extracted
text. bench/loaders.py measures the same pages against plain pypdf.
"""

from __future__ import annotations

import io
import random

_TEXT = (
    "model page column reader figure caption table result method data value sample layout order text line "
    "block paper report study measure share test error rate group score field grid space width height "
    "margin section network signal pattern region sensor energy cost price market policy growth level "
    "factor effect source "
)
_WORDS = _TEXT.split()
_VERBS = ["shows", "keeps", "reads", "finds", "gives", "moves", "joins", "holds", "marks", "sets"]


def sentences(count: int, seed: int) -> list[str]:
    """`count` unique sentences of 8 to 20 words, each starting with a capital and ending with a period."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
        words.insert(2, rng.choice(_VERBS))
        words.insert(1, f"n{seed}x{k}")  # makes every sentence unique
        out.append(" ".join(words).capitalize() + ".")
    return out


def _figure_png(width_px: int = 400, height_px: int = 200) -> io.BytesIO:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width_px, height_px), (225, 225, 225))
    draw = ImageDraw.Draw(image)
    for x in range(0, width_px, 40):
        draw.line([(x, height_px), (x + 30, height_px // 3)], fill=(60, 60, 160), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def column_pdf(
    columns: int, pages: int = 2, seed: int = 0, table: bool = False, interleave: bool = False
) -> tuple[bytes, list[str]]:
    """(PDF bytes, the body sentences in reading order). Captions and table cells are not in the list.

    Columns are written one after the other (as LaTeX does), or with `interleave` line by line across the page
    (as some report generators do), which plain content-stream extraction reads as mixed columns."""
    from fpdf import FPDF

    rng = random.Random(seed)
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    margin, gutter = 15.0, 8.0
    width = (210 - 2 * margin - gutter * (columns - 1)) / columns
    body: list[str] = []
    figure = 0
    for p in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 14)
        pdf.text(margin, 18, f"Report on layouts, part {p + 1}")
        ops: list[tuple[float, float, str, str]] = []  # (y, x, style, text): lines to write
        bottom = 200 if table and p == pages - 1 else 282
        for c in range(columns):
            x, y = margin + c * (width + gutter), 26.0
            while True:
                if rng.random() < 0.3 and y + 45 < bottom:
                    figure += 1
                    pdf.image(_figure_png(), x=x, y=y, w=width, h=width / 2)
                    y += width / 2 + 2
                    caption = f"Figure {figure}: the {rng.choice(_WORDS)} of each {rng.choice(_WORDS)}."
                    pdf.set_font("Helvetica", "I", 8)
                    for line in pdf.multi_cell(width, 3.5, caption, dry_run=True, output="LINES"):
                        ops.append((y + 3, x, "I", line))
                        y += 3.5
                    y += 3
                paragraph = sentences(rng.randint(2, 4), seed * 1000 + len(body))
                pdf.set_font("Helvetica", size=9)
                lines = pdf.multi_cell(width, 4.2, " ".join(paragraph), dry_run=True, output="LINES")
                if y + 4.2 * len(lines) > bottom:
                    break
                for line in lines:
                    ops.append((y + 3.2, x, "", line))
                    y += 4.2
                body += paragraph
                y += 2.5
        if interleave:
            ops.sort(key=lambda op: (round(op[0], 1), op[1]))
        for y, x, style, line in ops:
            pdf.set_font("Helvetica", style, 8 if style else 9)
            pdf.text(x, y, line)
        if table and p == pages - 1:
            pdf.set_xy(margin, bottom + 5)
            pdf.set_font("Helvetica", size=9)
            with pdf.table(col_widths=(50, 40, 40, 50)) as grid:
                for r in range(8):
                    row = grid.row()
                    for k in range(4):
                        row.cell("Name" if r == 0 and k == 0 else f"{rng.choice(_WORDS)} {r}.{k}")
    return bytes(pdf.output()), body


def sentences_kept(text: str, body: list[str]) -> float:
    """Share of `body` sentences found whole (same words in order; line breaks and spaces ignored) in `text`."""
    flat = " ".join(text.split())
    return sum(1 for s in body if s in flat) / len(body)
