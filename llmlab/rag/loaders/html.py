"""HTML pages: main text with boilerplate removed (trafilatura), one unit per section under a heading.

    bytes -> decode (BOM > HTTP charset > <meta charset> > UTF-8 > Windows-1252) -> lxml tree
          -> links made absolute (against <base href>, else the page URL or file URI)
          -> trafilatura main-text XML (favor_recall) -> sections by <head rend="hN">

trafilatura (Barbaresi, ACL 2021) removes navigation, footers and ads. Its own link resolution is not used: it
resolves "../x" against the host instead of the page, so links are made absolute with lxml before it runs.
Paragraphs are separated by blank lines, list items start with "- ", table rows keep their cells on one line
joined by " | ". The main text's links go to `metadata["links"]` (one per line); the title is trafilatura's
(from <title>, <h1> or meta tags), else <title>, else the file name. When trafilatura finds no main text,
all the page's text is kept with a warning.
Tests: tests/rag/test_loaders_html.py
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llmlab.errors import DataError, MissingDependencyError
from llmlab.rag.loaders.source import content_hash, decode_text
from llmlab.rag.types import Document, SourceType, Unit

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HEADING_LEVEL = re.compile(r"h([1-6])")
_SPACES = re.compile(r"[^\S\n]+")


def load_html(
    data: bytes,
    source: str,
    *,
    url: str | None = None,
    declared_encoding: str | None = None,
    source_type: SourceType = "html",
) -> Document:
    """A Document from an HTML page's bytes.

    Args:
        data: the raw bytes (the content hash is taken over them).
        source: file path or URL, used in errors and as `Document.source`.
        url: the page's URL, used to resolve relative links; default: the file's URI.
        declared_encoding: charset from an HTTP Content-Type header, if any.
        source_type: "html" for files, "web" for crawled pages.

    Raises:
        DataError: the page cannot be parsed as HTML.
    """
    tree, encoding = parse_html(data, source, url=url, declared_encoding=declared_encoding)
    return document_from_tree(tree, data, source, encoding, source_type)


def document_from_tree(
    tree: Any, data: bytes, source: str, encoding: str, source_type: SourceType
) -> Document:
    """The Document of a page parsed by `parse_html` (trafilatura may change the tree: read links first)."""
    page_title = " ".join(tree.findtext(".//title", default="").split())
    units, title, links, warnings = extract_main(tree, source)
    return Document(
        source=source,
        source_type=source_type,
        title=title or page_title or Path(source).stem,
        units=units,
        content_hash=content_hash(data),
        warnings=warnings,
        metadata={"encoding": encoding, **({"links": "\n".join(links)} if links else {})},
    )


def parse_html(
    data: bytes, source: str, *, url: str | None = None, declared_encoding: str | None = None
) -> tuple[Any, str]:
    """(lxml tree with absolute links, encoding used) for an HTML page's bytes."""
    import lxml.etree
    import lxml.html

    declared = declared_encoding or meta_charset(data)
    text, encoding = decode_text(data, declared)
    text = _XML_DECLARATION.sub("", text, count=1)  # lxml refuses str input that declares an encoding
    if not text.strip():
        raise DataError("the page holds only whitespace; nothing to load", location=source)
    try:
        tree = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError) as err:
        raise DataError(f"cannot parse the HTML: {err}", location=source) from err
    base = url or (Path(source).as_uri() if Path(source).is_absolute() else None)
    if base:
        tree.make_links_absolute(base, resolve_base_href=True, handle_failures="ignore")
    return tree, encoding


def meta_charset(data: bytes) -> str | None:
    """The charset an HTML page declares in a <meta> tag within its first 4 KiB, if any."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def page_links(tree: Any) -> list[str]:
    """Every <a href> of the whole page (after `parse_html`, so absolute), in order, without duplicates."""
    hrefs = (a.get("href", "").strip() for a in tree.iter("a"))
    return list(dict.fromkeys(h for h in hrefs if h))


def extract_main(tree: Any, source: str) -> tuple[list[Unit], str, list[str], list[str]]:
    """(units, trafilatura's title, links of the main text, warnings) for a parsed page."""
    try:
        import trafilatura
    except ImportError as err:
        raise MissingDependencyError("trafilatura", "rag", err) from err
    import lxml.etree

    xml = trafilatura.extract(
        tree,
        output_format="xml",
        favor_recall=True,
        include_links=True,
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        with_metadata=True,
    )
    if not xml:
        text = trafilatura.html2txt(tree).strip()
        if not text:
            return [], "", [], [f"{source}: no text found in the page"]
        return [Unit(text=text)], "", [], [f"{source}: no main text found; kept all the page's text"]
    doc = lxml.etree.fromstring(xml.encode("utf-8"))
    main = doc.find("main")
    units = sections(main) if main is not None else []
    links = list(dict.fromkeys(ref.get("target", "") for ref in doc.iter("ref") if ref.get("target")))
    warnings = [] if units else [f"{source}: no text found in the page"]
    return units, doc.get("title", ""), links, warnings


def sections(main: Any) -> list[Unit]:
    """Units from trafilatura's <main>: a new unit at each <head>, its text the heading and the blocks under it."""
    units: list[Unit] = []
    stack: list[tuple[int, str]] = []
    blocks: list[str] = []

    def close() -> None:
        body = "\n\n".join(b for b in blocks if b)
        if body.strip() and (not stack or body != stack[-1][1]):
            units.append(Unit(text=body, heading_path=tuple(name for _, name in stack)))

    for el in main:
        if el.tag == "head":
            close()
            match = _HEADING_LEVEL.fullmatch(el.get("rend", ""))
            level = int(match.group(1)) if match else 2
            name = _clean(inline_text(el))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, name))
            blocks = [name]
        else:
            blocks.append(block_text(el))
    close()
    return units


def block_text(el: Any) -> str:
    """Text of one block: list items as "- item" lines, table rows as "a | b | c", other blocks inline."""
    if el.tag == "list":
        return "\n".join("- " + _clean(inline_text(item)) for item in el.findall("item"))
    if el.tag == "table":
        rows = (
            " | ".join(_clean(inline_text(cell)) for cell in row.findall("cell")) for row in el.findall("row")
        )
        return "\n".join(r for r in rows if r.strip(" |"))
    return _clean(inline_text(el))


def inline_text(el: Any) -> str:
    """All text inside `el` with <lb/> as a line break."""
    parts = [el.text or ""]
    for child in el:
        parts.append("\n" if child.tag == "lb" else inline_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _clean(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)
