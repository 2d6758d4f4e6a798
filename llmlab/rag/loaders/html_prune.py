"""Boilerplate that trafilatura keeps, removed from its main-text XML: the gap between it and the best article
extractors is mostly precision (issue 17).

Rules, each on trafilatura's <main> (blocks <p>, <list>, <quote>, <head>, <table>; links as <ref>):
    hover cards   a run of >= 3 links with nothing but spaces between them inside a paragraph is the pop-up of
                  the first one ("Rep. Ilhan OmarIlhan OmarHillicon Valley: ..."): only the first link is kept
    link blocks   a paragraph or list whose words are >= LINK_SHARE inside links, at most LINK_WORDS words a
                  link, is a list of related stories, tags or share buttons; a short label just before it
                  ("Related:", "Read more:") goes with it, and so does such a label at the very end

Tuned on the ScrapingHub article-extraction benchmark's pages whose id starts with 0-7 and on 300 pages of
trafilatura's own evaluation set, reported on the other ScrapingHub pages (bench/loaders.py). A third rule,
dropping short lines without a full stop at the start and end of the text ("comments", "DON'T MISS"), was
left out: it cost body text on trafilatura's pages (recall 0.942 -> 0.937) and gained nothing on ScrapingHub's.
Tests: tests/rag/test_loaders_html.py.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

LINK_SHARE = 0.8
"""Share of a block's words inside links above which the block is navigation, not prose."""
LINK_WORDS = 15
"""A link block has at most this many words per link (titles of other stories, tags, share buttons)."""
LABEL_WORDS = 4
"""A block this short that ends with ":" and precedes a link block is that block's label."""

_WORD = re.compile(r"\w+")


def prune(main: Any) -> None:
    """Apply the rules of the module docstring to trafilatura's <main> element, in place."""
    for block in list(main.iter("p", "item", "quote", "cell")):
        _drop_hover_cards(block)
    blocks = [el for el in main if el.tag != "head"]
    dropped = {id(el) for el in blocks if _link_block(el)}
    for before, after in itertools.pairwise(blocks):
        if id(after) in dropped and _label(before):
            dropped.add(id(before))
    if blocks and _label(blocks[-1]):  # a label whose list trafilatura already left out
        dropped.add(id(blocks[-1]))
    for el in blocks:
        if id(el) in dropped:
            main.remove(el)


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _text(el: Any) -> str:
    return "".join(el.itertext())


def _link_block(el: Any) -> bool:
    """A paragraph or list of links to other pages: mostly link words, and short per link (a story title, a
    tag), unlike a paragraph of prose that happens to sit inside one link."""
    if el.tag not in ("p", "list"):
        return False
    total = _words(_text(el))
    refs = list(el.iter("ref"))
    linked = sum(_words(_text(ref)) for ref in refs)
    return bool(refs) and linked >= LINK_SHARE * total and total <= LINK_WORDS * len(refs)


def _label(el: Any) -> bool:
    text = _text(el).strip()
    return el.tag == "p" and text.endswith((":", "…", "...")) and _words(text) <= LABEL_WORDS


def _drop_hover_cards(block: Any) -> None:
    """Keep only the first link of each run of >= 3 links separated by nothing but whitespace."""
    children = list(block)
    k = 0
    while k < len(children):
        run = [children[k]]
        while (
            run[-1].tag == "ref"
            and not (run[-1].tail or "").strip()
            and k + len(run) < len(children)
            and children[k + len(run)].tag == "ref"
        ):
            run.append(children[k + len(run)])
        if run[0].tag == "ref" and len(run) >= 3:
            tail = run[-1].tail
            for ref in run[1:]:
                block.remove(ref)
            run[0].tail = tail
        k += len(run)
