"""A web page's metadata for citing and filtering: title, author, date, language and site name.

Read from the parsed tree in this order, first found wins:
    title      the page's only <h1>, else og:title / twitter:title, else <title> without a " | Site" suffix
    author     JSON-LD author names, meta author / article:author / byl / dc.creator / parsely-author,
               itemprop="author", rel="author" links ("By " removed; URLs are not names)
    date       JSON-LD datePublished, meta article:published_time / date / pubdate / dc.date / parsely-pub-date,
               itemprop="datePublished", the first <time datetime>; kept as YYYY-MM-DD
    language   <html lang>, else meta content-language, else og:locale ("en_US" -> "en-US")
    site_name  og:site_name, else JSON-LD publisher name, else application-name

trafilatura's own metadata pass finds the same fields but took about as long as the text extraction itself
(htmldate's date search); these lookups are a few XPath queries. Tests: tests/rag/test_loaders_html.py
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_BY = re.compile(r"^\s*(by|von|par|por|di)\s+", re.IGNORECASE)
_TITLE_SUFFIX = re.compile(r"\s+[|–—·-]\s+[^|–—·]{1,60}$")

_META_AUTHOR = (
    "author",
    "article:author",
    "byl",
    "dc.creator",
    "dcterms.creator",
    "parsely-author",
    "sailthru.author",
)
_META_DATE = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "date",
    "pubdate",
    "publishdate",
    "dc.date",
    "dc.date.issued",
    "dcterms.date",
    "parsely-pub-date",
    "sailthru.date",
)


def page_metadata(tree: Any) -> dict[str, str]:
    """{"title", "author", "date", "language", "site_name"} for a parsed page; fields not found are left out."""
    meta = _meta_tags(tree)
    ld = list(_json_ld(tree))
    found = {
        "title": _title(tree, meta),
        "author": _author(tree, meta, ld),
        "date": _date(tree, meta, ld),
        "language": _language(tree, meta),
        "site_name": meta.get("og:site_name")
        or _ld_name(ld, "publisher")
        or meta.get("application-name", ""),
    }
    return {key: value for key, value in found.items() if value}


def _meta_tags(tree: Any) -> dict[str, str]:
    """name/property/itemprop/http-equiv (lower case) -> content of the first <meta> that has it."""
    tags: dict[str, str] = {}
    for el in tree.iter("meta"):
        key = el.get("property") or el.get("name") or el.get("itemprop") or el.get("http-equiv")
        content = " ".join((el.get("content") or "").split())
        if key and content:
            tags.setdefault(key.strip().lower(), content)
    return tags


def _json_ld(tree: Any) -> Iterator[dict[str, Any]]:
    """Every JSON-LD object on the page (top level, in lists and in @graph)."""
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, dict):
                yield item
                if isinstance(item.get("@graph"), list):
                    stack.extend(reversed(item["@graph"]))


def _ld_name(ld: list[dict[str, Any]], key: str) -> str:
    names: list[str] = []
    for item in ld:
        value = item.get(key)
        for entry in value if isinstance(value, list) else [value]:
            name = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(name, str) and name.strip() and not name.startswith("http"):
                names.append(" ".join(name.split()))
        if names:
            break
    return ", ".join(dict.fromkeys(names))


def _title(tree: Any, meta: dict[str, str]) -> str:
    h1 = tree.xpath("//body//h1")
    if len(h1) == 1:
        text = " ".join(h1[0].text_content().split())
        if text:
            return text
    title = meta.get("og:title") or meta.get("twitter:title")
    if title:
        return title
    page = " ".join(tree.findtext(".//title", default="").split())
    return _TITLE_SUFFIX.sub("", page) or page


def _author(tree: Any, meta: dict[str, str], ld: list[dict[str, Any]]) -> str:
    found = _ld_name(ld, "author")
    if found:
        return found
    for key in _META_AUTHOR:
        value = meta.get(key, "")
        if value and "://" not in value:
            return _BY.sub("", value)
    for el in tree.xpath('//*[@itemprop="author"] | //a[@rel="author"]'):
        names = el.xpath('.//*[@itemprop="name"]')
        text = " ".join((names[0] if names else el).text_content().split())
        if text and len(text) <= 100:
            return _BY.sub("", text)
    return ""


def _date(tree: Any, meta: dict[str, str], ld: list[dict[str, Any]]) -> str:
    for value in _date_candidates(tree, meta, ld):
        match = _DATE.search(value) if isinstance(value, str) else None
        if match and 1 <= int(match.group(2)) <= 12 and 1 <= int(match.group(3)) <= 31:
            return "-".join(match.groups())
    return ""


def _date_candidates(tree: Any, meta: dict[str, str], ld: list[dict[str, Any]]) -> Iterator[Any]:
    """Dates in the order of the module docstring, lazily: most pages stop at a meta tag, before the searches
    of the whole tree."""
    yield from (item.get("datePublished") for item in ld)
    yield from (meta.get(key) for key in _META_DATE)
    for el in tree.xpath('//*[@itemprop="datePublished"]'):
        yield el.get("content") or el.get("datetime")
    yield from (el.get("datetime") for el in tree.xpath("(//time[@datetime])[1]"))


def _language(tree: Any, meta: dict[str, str]) -> str:
    root = tree.getroottree().getroot() if hasattr(tree, "getroottree") else tree
    value = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    value = value or meta.get("content-language") or meta.get("og:locale") or ""
    return value.split(",")[0].strip().replace("_", "-")
