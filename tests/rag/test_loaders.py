"""load_path dispatch, the shared file checks, plain text, markdown sections and iter_files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmlab.errors import DataError
from llmlab.rag.loaders import FoundFile, iter_files, load_path
from llmlab.rag.loaders.source import content_hash, decode_text
from llmlab.rag.types import Unit

MARKDOWN = """---
title: The Guide
author: Ada
tags: [a, b]
---
Intro before any heading.

# Install

Run pip.

## From source

Clone it.
```sh
# not a heading
make
```

Usage
-----

Call it.

### Empty

# Second top
Text.
"""


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def test_markdown_sections_and_heading_paths(tmp_path):
    doc = load_path(write(tmp_path / "guide.md", MARKDOWN))
    assert doc.source == str((tmp_path / "guide.md").resolve())
    assert (doc.source_type, doc.title) == ("markdown", "The Guide")
    assert doc.metadata == {"encoding": "utf-8", "author": "Ada"}
    assert [(u.heading_path, u.text) for u in doc.units] == [
        ((), "Intro before any heading."),
        (("Install",), "# Install\n\nRun pip."),
        (("Install", "From source"), "## From source\n\nClone it.\n```sh\n# not a heading\nmake\n```"),
        (("Install", "Usage"), "Usage\n-----\n\nCall it."),
        (("Second top",), "# Second top\nText."),
    ]
    assert doc.content_hash == content_hash(MARKDOWN.encode())
    assert doc.warnings == []


def test_markdown_title_falls_back_to_first_h1_then_file_name(tmp_path):
    assert load_path(write(tmp_path / "a.md", "Intro\n\n# `load_path` and [links](x.md)\nx")).title == (
        "load_path and links"
    )
    assert load_path(write(tmp_path / "notes.markdown", "## Sub\ntext")).title == "notes"


def test_markdown_only_headings_warns(tmp_path):
    doc = load_path(write(tmp_path / "h.md", "# A\n\n## B\n"))
    assert doc.units == []
    assert doc.warnings == [f"{tmp_path / 'h.md'}: no text found (only headings, front matter or whitespace)"]


def test_text_file_crlf_and_cp1252(tmp_path):
    doc = load_path(write(tmp_path / "notes.txt", "café – naïve\r\nline two\r\n".encode("cp1252")))
    assert (doc.source_type, doc.title) == ("text", "notes")
    assert doc.units == [Unit(text="café – naïve\nline two\n")]
    assert doc.warnings == [f"{tmp_path / 'notes.txt'}: not valid UTF-8; decoded as cp1252"]


def test_text_utf16_with_bom(tmp_path):
    doc = load_path(write(tmp_path / "w.txt", "\ufeffhello wörld".encode("utf-16-le")))
    assert doc.units[0].text == "hello wörld"


def test_unknown_extension_is_sniffed(tmp_path):
    assert load_path(write(tmp_path / "README", "# Title\nhello")).source_type == "text"
    page = "<!DOCTYPE html><html><head><title>T</title></head><body><p>Body text here.</p></body></html>"
    assert load_path(write(tmp_path / "page.view", page)).source_type == "html"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "the file is empty (0 bytes); nothing to load"),
        (
            "bin.txt",
            b"\x7fELF\x00\x01\x02",
            "binary data, not text (it holds NUL bytes); check the file type",
        ),
    ],
)
def test_bad_text_files(tmp_path, name, data, reason):
    path = write(tmp_path / name, data)
    with pytest.raises(DataError) as err:
        load_path(path)
    assert str(err.value) == f"{path.resolve()}: {reason}"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope\.md: file not found; check the path"):
        load_path(tmp_path / "nope.md")
    with pytest.raises(DataError, match="not a regular file"):
        load_path(tmp_path)


def test_size_limit(tmp_path):
    path = write(tmp_path / "big.txt", "x" * 3 * 2**20)
    with pytest.raises(DataError) as err:
        load_path(path, max_bytes=2 * 2**20)
    assert str(err.value) == (
        f"{path.resolve()}: the file is 3.0 MiB, over the 2.0 MiB limit; raise the limit with max_bytes= "
        "(CLI: --max-file-mb) or split the file"
    )
    assert load_path(path, max_bytes=4 * 2**20).units[0].text == "x" * 3 * 2**20


def test_decode_text_prefers_declared_then_utf8():
    assert decode_text("é".encode(), "latin-1") == ("Ã©", "cp1252")
    assert decode_text("é".encode(), "no-such-codec") == ("é", "utf-8")
    assert decode_text(b"\x81\xe9", None) == ("\x81é", "latin-1")


def test_iter_files_recursive_globs_hidden_and_unsupported(tmp_path):
    for name in ["a.md", "sub/b.TXT", "sub/deep/c.pdf", "sub/drafts/d.md", ".hidden/e.md", "f.xyz", ".g.md"]:
        write(tmp_path / name, "x")
    found = list(iter_files([tmp_path], exclude=["**/drafts/*"]))
    rel = {f.path.relative_to(tmp_path.resolve()).as_posix(): f.skipped for f in found}
    assert rel == {
        ".hidden": "hidden folder",
        ".g.md": "hidden file",
        "a.md": None,
        "f.xyz": "unsupported extension '.xyz'",
        "sub/b.TXT": None,
        "sub/deep/c.pdf": None,
    }
    only_md = [f.path.name for f in iter_files([tmp_path], include=["*.md"]) if f.skipped is None]
    assert only_md == ["a.md", "d.md"]
    assert list(iter_files([tmp_path / "f.xyz"])) == [FoundFile((tmp_path / "f.xyz").resolve())]
    with pytest.raises(DataError, match="no such file or folder"):
        list(iter_files([tmp_path / "missing"]))


def test_a_few_broken_bytes_do_not_turn_a_utf8_page_into_mojibake():
    """One Latin-1 byte pasted into a UTF-8 page used to send the whole page to Windows-1252 ("schÃ¶n")."""
    data = ("Schön, süß und grün: " * 20).encode() + b"caf\xe9"
    assert decode_text(data, "utf-8") == (("Schön, süß und grün: " * 20) + "caf\ufffd", "utf-8")
    assert decode_text("Crème brûlée".encode("cp1252"), None) == ("Crème brûlée", "cp1252")
