"""HTML loading: boilerplate removed, sections by heading, links resolved, tables by row, encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmlab.errors import DataError
from llmlab.rag.loaders import load_path
from llmlab.rag.loaders.html import load_html, meta_charset, page_links, parse_html

PAGE = """<!DOCTYPE html>
<html><head><title>Guide | Example site</title></head>
<body>
<nav><a href="/">Home</a> <a href="/about.html">About us</a> <a href="/contact.html">Contact</a></nav>
<article>
<h1>Installing the tool</h1>
<p>The tool installs with one command and needs no network once the packages are on disk. See the
<a href="../ref/options.html">options page</a> for every flag it takes.</p>
<h2>From source</h2>
<p>Clone the repository and run the bootstrap target; it builds a virtual environment in the folder.</p>
<h3>Requirements</h3>
<table><tr><th>Package</th><th>Version</th></tr><tr><td>torch</td><td>2.13</td></tr>
<tr><td>numpy</td><td>1.26</td></tr></table>
<ul><li>a C compiler for the optional extension</li><li>about two gigabytes of disk space</li></ul>
<h2>Checking the install</h2>
<p>Run the test suite; every test should pass in a few seconds on a laptop.</p>
</article>
<footer>Copyright 2026 Example Corp. All rights reserved. Privacy policy. Cookie settings.</footer>
</body></html>
"""


def test_sections_links_tables_and_boilerplate(tmp_path):
    path = tmp_path / "docs" / "guide" / "install.html"
    path.parent.mkdir(parents=True)
    path.write_text(PAGE, encoding="utf-8")
    doc = load_path(path)
    assert (doc.source_type, doc.title, doc.warnings) == ("html", "Installing the tool", [])
    assert [u.heading_path for u in doc.units] == [
        ("Installing the tool",),
        ("Installing the tool", "From source"),
        ("Installing the tool", "From source", "Requirements"),
        ("Installing the tool", "Checking the install"),
    ]
    assert doc.units[0].text.startswith("Installing the tool\n\nThe tool installs with one command")
    assert doc.units[2].text == (
        "Requirements\n\nPackage | Version\ntorch | 2.13\nnumpy | 1.26\n\n"
        "- a C compiler for the optional extension\n- about two gigabytes of disk space"
    )
    full = "\n".join(u.text for u in doc.units)
    assert "Copyright" not in full and "About us" not in full
    assert doc.metadata["links"] == (tmp_path / "docs" / "ref" / "options.html").as_uri()


def test_cp1252_page_without_meta_charset(tmp_path):
    body = "<html><body><h1>Caf\xe9 menu</h1><p>Cr\xe8me br\xfbl\xe9e \x96 \x80 5, the na\xefve choice of every guest who comes in.</p></body></html>"
    path = tmp_path / "menu.htm"
    path.write_bytes(body.encode("latin-1"))
    doc = load_path(path)
    assert doc.metadata["encoding"] == "cp1252"
    assert "Crème brûlée – € 5, the naïve choice" in doc.units[0].text


def test_meta_charset_is_honoured(tmp_path):
    """ISO-8859-15 maps 0xA4 to the euro sign (cp1252 would give "¤"): the declared charset must win."""
    html = '<html><head><meta charset="iso-8859-15"><title>Prices</title></head><body><p>It costs 5 \xa4 at the door for every visitor who comes.</p></body></html>'
    doc = load_html(html.encode("latin-1"), "/x/prices.html")
    assert doc.metadata["encoding"] == "iso8859-15"
    assert "It costs 5 € at the door" in doc.units[0].text
    assert (
        meta_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">')
        == "Shift_JIS"
    )


def test_base_href_and_page_links():
    html = b'<html><head><base href="https://ex.org/docs/"></head><body><a href="a.html">A</a><a href="/b">B</a><a href="a.html">A</a></body></html>'
    tree, _ = parse_html(html, "page", url="https://ex.org/index.html")
    assert page_links(tree) == ["https://ex.org/docs/a.html", "https://ex.org/b"]


def test_short_page_and_page_with_only_boilerplate():
    doc = load_html(b"<html><body><div>Short.</div></body></html>", "/t/short.html")
    assert ([u.text for u in doc.units], doc.title, doc.warnings) == (["Short."], "short", [])
    doc = load_html(
        b"<html><body><footer>Copyright 2026</footer><script>x=1</script></body></html>", "/t/f.html"
    )
    assert (doc.units, doc.warnings) == ([], ["/t/f.html: no text found in the page"])


def test_whitespace_page_is_an_error():
    with pytest.raises(DataError, match=r"^/t/blank.html: the page holds only whitespace"):
        load_html(b"  \n ", "/t/blank.html")


def test_xhtml_with_xml_declaration(tmp_path):
    page = '<?xml version="1.0" encoding="utf-8"?><html><body><p>Déjà vu, an XHTML page that declares its encoding.</p></body></html>'
    path = Path(tmp_path / "x.xhtml")
    path.write_bytes(page.encode())
    assert "Déjà vu" in load_path(path).units[0].text
