"""DOCX loading: sections from heading styles, tables by row, lists, title, and broken files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx  # the rag extra: a missing one fails the run, never skips
import pytest

from llmlab.errors import DataError
from llmlab.rag.loaders import load_path


def make_docx(path: Path, with_title_property: bool = False) -> Path:
    doc = docx.Document()
    if with_title_property:
        doc.core_properties.title = "Property title"
    doc.add_paragraph("Field guide", style="Title")
    doc.add_paragraph("A short preface before any heading.")
    doc.add_heading("Birds", level=1)
    doc.add_paragraph("Birds have feathers.")
    doc.add_heading("Owls", level=2)
    doc.add_paragraph("Owls hunt at night.")
    doc.add_paragraph("barn owl", style="List Bullet")
    doc.add_paragraph("snowy owl", style="List Bullet")
    table = doc.add_table(rows=3, cols=3)
    for r, row in enumerate([("Name", "Span", "Weight"), ("Barn owl", "1 m", "0.5 kg"), ("merged", "", "x")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    table.cell(2, 0).merge(table.cell(2, 1))
    doc.add_heading("Fish", level=1)
    doc.add_paragraph("Fish have gills.")
    doc.save(path)
    return path


def test_sections_tables_lists_and_title(tmp_path):
    doc = load_path(make_docx(tmp_path / "guide.docx"))
    assert (doc.source_type, doc.title, doc.warnings) == ("docx", "Field guide", [])
    assert [(u.heading_path, u.text) for u in doc.units] == [
        ((), "A short preface before any heading."),
        (("Birds",), "Birds\n\nBirds have feathers."),
        (
            ("Birds", "Owls"),
            "Owls\n\nOwls hunt at night.\n\n- barn owl\n\n- snowy owl\n\n"
            "Name | Span | Weight\nBarn owl | 1 m | 0.5 kg\nmerged | x",
        ),
        (("Fish",), "Fish\n\nFish have gills."),
    ]


def test_title_property_wins(tmp_path):
    assert load_path(make_docx(tmp_path / "g.docx", with_title_property=True)).title == "Property title"


def test_broken_docx_files(tmp_path):
    good = make_docx(tmp_path / "good.docx").read_bytes()
    cases = {
        "cut.docx": (good[: len(good) // 2], "not a valid .docx file (BadZipFile: "),
        "old.docx": (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
            "an old binary Word .doc file; save it as .docx",
        ),
        "other.docx": (None, "not a valid .docx file ("),
    }
    with zipfile.ZipFile(tmp_path / "other.docx", "w") as archive:
        archive.writestr("hello.txt", "not word")
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(DataError) as err:
            load_path(path)
        assert str(err.value).startswith(f"{path}: {reason}"), str(err.value)
