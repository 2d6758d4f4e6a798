"""HTML pages: main text with boilerplate removed (trafilatura), one unit per section under a heading.

    bytes -> decode (BOM > HTTP charset > <meta charset> > UTF-8 > Windows-1252)
          -> lxml tree without comments, scripts (JSON-LD kept for metadata), styles and templates
          -> links made absolute (against <base href>, else the page URL or file URI)
          -> metadata (html_meta.py: title, author, date, language, site name)
          -> posts the article quotes (tweets, Instagram) taken out of social-media wrappers that trafilatura drops
          -> an article body split into containers of one class by an advertisement row joined into the first
          -> pull quotes (an <aside> that is a quotation) read as <blockquote>: trafilatura drops every <aside>
          -> trafilatura main text (balanced mode) -> html_prune.py (hover cards, link lists, page lines, edges)
          -> sections by <head rend="hN">

trafilatura (Barbaresi, ACL 2021) removes navigation, footers and ads. Its own link resolution is not used: it
resolves "../x" against the host instead of the page, so links are made absolute with lxml before it runs.
Comments are removed while parsing: inside trafilatura the text that follows a comment in a paragraph was lost
("When <!-- -->President ..." came out as "When"). Paragraphs are separated by blank lines, list items start
with "- ", table rows keep their cells on one line joined by " | ", a line break inside a block is kept only
where the page has <br>; a space after a link that trafilatura trimmed ("MacBook Prowas released") is put back
where the page has it. The main text's links go to `metadata["links"]` (one per line). When trafilatura finds
no main text, all the page's text is kept with a warning. bench/loaders.py scores the text on the ScrapingHub
article-extraction benchmark against plain trafilatura. Tests: tests/rag/test_loaders_html.py
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from llmlab.errors import DataError, MissingDependencyError
from llmlab.rag.loaders.source import content_hash, decode_text
from llmlab.rag.types import Document, SourceType, Unit

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HEADING_LEVEL = re.compile(r"h([1-6])")
_SPACES = re.compile(r"\s+")
_INERT = (
    "meta",
    "link",
    "svg",
    "input",
    "source",
    "track",
    "param",
    "area",
    "select",
    "option",
    "optgroup",
    "datalist",
    "textarea",
    "iframe",
    "object",
    "embed",
    "canvas",
    "button",
)
"""Tags with no text of their own, dropped once the metadata is read (their tails stay)."""


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
    from llmlab.rag.loaders.html_meta import page_metadata

    metadata = page_metadata(tree)
    # Elements that hold no text, read: trafilatura copies the whole tree four times and walks it a dozen.
    import lxml.etree

    lxml.etree.strip_elements(tree, *_INERT, with_tail=False)
    unwrap_embedded_posts(tree)
    join_split_bodies(tree)
    pull_quotes(tree)
    units, links, warnings = extract_main(tree, source)
    metadata.setdefault("title", Path(source).stem)
    return Document(
        source=source,
        source_type=source_type,
        title=metadata["title"],
        units=units,
        content_hash=content_hash(data),
        warnings=warnings,
        metadata={**metadata, "encoding": encoding, **({"links": "\n".join(links)} if links else {})},
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
        tree = lxml.html.document_fromstring(text, parser=_parser())
    except (lxml.etree.ParserError, ValueError) as err:
        raise DataError(f"cannot parse the HTML: {err}", location=source) from err
    # Scripts, styles and templates hold no prose (JSON-LD metadata stays for html_meta); comments are
    # dropped by the parser: trafilatura loses the text after a comment inside a paragraph.
    for el in list(tree.iter("script")):
        if el.get("type", "").lower() != "application/ld+json":
            el.drop_tree()  # keeps the text that follows the element
    lxml.etree.strip_elements(tree, "style", "template", "noscript", with_tail=False)
    base = url or (Path(source).as_uri() if Path(source).is_absolute() else "")
    declared_base = tree.find(".//base[@href]")
    if declared_base is not None:
        base = urljoin(base, declared_base.get("href", "").strip())
    # Links are resolved against this when read (page_links, the main text's links): rewriting every link
    # of the tree up front (lxml's make_links_absolute) took a third of the page's time.
    tree.getroottree().docinfo.URL = base or None
    return tree, encoding


def absolute(tree: Any, href: str) -> str:
    """`href` resolved against the page's base (from `parse_html`); unchanged when it cannot be resolved."""
    base = tree.getroottree().docinfo.URL
    try:
        return urljoin(base, href.strip()) if base else href.strip()
    except ValueError:  # a malformed href (e.g. an invalid IPv6 host) stays as written
        return href.strip()


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    import lxml.etree
    import lxml.html

    # collect_ids=False: lxml's table of id attributes is never used here (trafilatura's parser does the same).
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)
    # Every element lxml hands to Python gets its class from this lookup, done in C. lxml.html's own lookup is a
    # Python callback (it gives <form> and <input> their own classes, which neither llmlab nor trafilatura
    # uses) that took a tenth of trafilatura's extraction time; copies of the tree keep the parser's lookup.
    parser.set_element_class_lookup(
        lxml.etree.ElementDefaultClassLookup(
            element=lxml.html.HtmlElement,
            comment=lxml.html.HtmlComment,
            pi=lxml.html.HtmlProcessingInstruction,
            entity=lxml.html.HtmlEntity,
        )
    )
    return parser


def meta_charset(data: bytes) -> str | None:
    """The charset an HTML page declares in a <meta> tag within its first 4 KiB, if any."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def page_links(tree: Any) -> list[str]:
    """Every <a href> of the whole page, made absolute, in order, without duplicates."""
    hrefs = (a.get("href", "").strip() for a in tree.iter("a"))
    return list(dict.fromkeys(absolute(tree, h) for h in hrefs if h))


_EMBED_WRAPPER = re.compile(r"social|embed|share|tweet|twitter", re.IGNORECASE)
_EMBEDDED_POST = re.compile(r"\b(twitter-tweet|instagram-media|tiktok-embed)\b")


def unwrap_embedded_posts(tree: Any) -> None:
    """A post quoted in the article (<blockquote class="twitter-tweet">, Instagram, TikTok) is taken out of the
    wrapper that marks it as social-media furniture (<div class="social-media-embed">): trafilatura drops such
    wrappers, and with them what the article quotes. The blockquote replaces the wrapper when the wrapper holds
    nothing else."""
    for quote in list(tree.iter("blockquote")):
        if not _EMBEDDED_POST.search(quote.get("class", "")):
            continue
        wrapper = quote.getparent()
        while (
            wrapper is not None
            and wrapper.tag == "div"
            and not _EMBED_WRAPPER.search(wrapper.get("class", "") + " " + wrapper.get("id", ""))
        ):
            wrapper = wrapper.getparent() if len(wrapper) == 1 else None
        if wrapper is None or wrapper.tag != "div" or len(wrapper) != 1 or (wrapper.text or "").strip():
            continue
        quote.tail = wrapper.tail
        wrapper.getparent().replace(wrapper, quote)


PULL_QUOTE_WORDS = 60
"""An <aside> that is a quotation of at most this many words is a pull quote of the article."""
_PULL_QUOTE_CLASS = re.compile(r"pull-?quote", re.IGNORECASE)
_QUOTED = re.compile(r"^[\"“„«‘'].*[\"”“»’']$", re.DOTALL)


def pull_quotes(tree: Any) -> None:
    """An <aside> that is a quotation (a pull quote: its class says so, it holds a <q> or <blockquote>, or its
    text is in quotation marks) is read as a <blockquote>: trafilatura drops every <aside>."""
    for aside in list(tree.iter("aside")):
        text = " ".join(aside.text_content().split())
        if not text or len(text.split()) > PULL_QUOTE_WORDS:
            continue
        quoted = (
            aside.find(".//q") is not None or aside.find(".//blockquote") is not None or _QUOTED.match(text)
        )
        if quoted or _PULL_QUOTE_CLASS.search(aside.get("class", "")):
            aside.tag = "blockquote"
            aside.attrib.clear()


_BODY_CLASS = re.compile(r"(article|story|entry|post)[-_]*(body|content|text)", re.IGNORECASE)


def join_split_bodies(tree: Any) -> None:
    """An article body cut into several containers of the same class by an advertisement row between them
    (<div class="article__body">...</div><div class="ad">...</div><div class="article__body">...</div>): trafilatura
    takes the first and loses the rest, so the content of a later container is moved into the first when no
    heading (h1-h3) stands between them and none holds a linked heading: on a page that lists posts, each post's
    container follows its title or holds it as a link."""
    groups: dict[str, list[Any]] = {}
    for el in tree.iter("div", "section", "article"):
        cls = el.get("class", "")
        if cls and _BODY_CLASS.search(cls):
            groups.setdefault(cls, []).append(el)
    # A container with a linked heading is a teaser of another post (a list of posts), not part of the body.
    groups = {
        c: parts for c, parts in groups.items() if len(parts) > 1 and not any(map(_linked_heading, parts))
    }
    if not groups:
        return
    order = {}
    headings = []
    for i, el in enumerate(tree.iter()):
        order[el] = i
        if el.tag in ("h1", "h2", "h3"):
            headings.append(i)
    for parts in groups.values():
        first = parts[0]
        end = order[first] + sum(1 for _ in first.iter())
        for part in parts[1:]:
            start = order[part]
            if start < end or any(end <= h < start for h in headings):
                break  # nested in the first, or a new post under its own title
            end = start + sum(1 for _ in part.iter())
            for child in list(part):
                first.append(child)
            part.getparent().remove(part)


def _linked_heading(el: Any) -> bool:
    return any(h.find(".//a") is not None for h in el.iter("h1", "h2", "h3", "h4", "h5", "h6"))


def extract_main(tree: Any, source: str) -> tuple[list[Unit], list[str], list[str]]:
    """(units, links of the main text, warnings) for a parsed page."""
    try:
        import trafilatura
    except ImportError as err:
        raise MissingDependencyError("trafilatura", "rag", err) from err

    from llmlab.rag.loaders.html_prune import prune

    units: list[Unit] = []
    links: list[str] = []
    # trafilatura's balanced mode, then recall's pass for short pages it finds nothing in. favor_precision scored
    # higher on the ScrapingHub pages tuned on (F1 0.975 vs 0.974) but lost body text on trafilatura's own
    # evaluation pages (recall 0.913 vs 0.937, 300 pages): see docs/rag-documents.md.
    for recall in (False, True):
        extracted = trafilatura.bare_extraction(
            tree,
            favor_recall=recall,
            include_links=True,
            include_formatting=False,
            include_tables=True,
            include_comments=False,
        )
        main = getattr(extracted, "body", None)
        if main is not None:
            prune(main)
            space_after_links(main, tree)
            units = sections(main)
            targets = (ref.get("target", "") for ref in main.iter("ref"))
            links = list(dict.fromkeys(absolute(tree, t) for t in targets if t.strip()))
        if units:
            return units, links, []
    try:
        text = trafilatura.html2txt(tree).strip()
    except ValueError:  # lxml refuses control characters trafilatura writes back into the tree
        text = " ".join(" ".join(tree.itertext()).split())
    if not text:
        return [], [], [f"{source}: no text found in the page"]
    return [Unit(text=text)], [], [f"{source}: no main text found; kept all the page's text"]


def space_after_links(main: Any, tree: Any) -> None:
    """Put back the space between a link and the word after it where trafilatura lost it ("MacBook Prowas
    released"): it trims the text after a link that it reads as a block of its own. Only the page's links
    followed by a space and then a letter or digit are looked up, and only when the main text has a link
    glued to a word."""
    glued = [ref for ref in main.iter("ref") if (ref.tail or "")[:1].isalnum() and _last_char(ref).isalnum()]
    if not glued:
        return
    spaced = set()
    for a in tree.iter("a"):
        tail, el = a.tail, a
        while not tail and el.getparent() is not None and el.getnext() is None:  # <strong><a>x</a></strong> y
            el = el.getparent()
            tail = el.tail
        tail = tail or ""
        if tail[:1].isspace() and tail.lstrip()[:1].isalnum():
            spaced.add((a.get("href", "").strip(), " ".join("".join(a.itertext()).split())))
    for ref in glued:
        if (ref.get("target", "").strip(), " ".join("".join(ref.itertext()).split())) in spaced:
            ref.tail = " " + ref.tail


def _last_char(el: Any) -> str:
    text = "".join(el.itertext()).rstrip()
    return text[-1:]


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
    """All text inside `el` with <lb/> as a line break (a newline in the page's source is a space)."""
    parts = [_SPACES.sub(" ", el.text or "")]
    for child in el:
        parts.append("\n" if child.tag == "lb" else inline_text(child))
        parts.append(_SPACES.sub(" ", child.tail or ""))
    return "".join(parts)


def _clean(text: str) -> str:
    text = text.replace("\u00ad", "").replace("\u200b", "")  # soft hyphens and zero-width spaces
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)
