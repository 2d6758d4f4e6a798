"""What an answer is: the text, its checked citations, the sources that support it and the chunks it was
given (`Answer`), as JSON (`Answer.to_dict`) and as people read a source's place (`source_label`).
rag/answer.py makes answers; cli/rag_output.py prints them. Tests: tests/rag/test_answer.py.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmlab.rag.citations import Attribution, Source
from llmlab.rag.types import Chunk, Hit


def source_label(chunk: Chunk, root: str | Path | None = None) -> str:
    """Where a chunk comes from, for people: `file.pdf, page 3`, `URL › Heading`, `guide.md › Install`
    (the page title, when it heads the path, is left out).

    Paths under `root` are shown relative to it."""
    where = chunk.source
    if root is not None and not where.startswith(("http://", "https://")):
        with contextlib.suppress(ValueError):  # not under root: keep the full path
            where = str(Path(where).relative_to(root))
    if chunk.page is not None:
        where += f", page {chunk.page}"
    headings = chunk.heading_path
    if len(headings) > 1 and headings[0] == chunk.title:  # a page's own title adds nothing to its path
        headings = headings[1:]
    if headings:
        where += " › " + " › ".join(headings)
    return where


@dataclass
class Answer:
    """A generated answer with its checked citations and the sources that support it."""

    question: str
    text: str
    sources: list[Source]
    """Context blocks supporting at least one answer sentence, in the order the answer relies on them."""
    hits: list[Hit]
    """The chunks given to the model; context block n is hits[n - 1]."""
    query: str = ""
    """The search query (in a chat, the follow-up rewritten to stand alone)."""
    citations: list[int] = field(default_factory=list)
    """Valid block numbers the model cited, in order."""
    invalid_citations: list[int] = field(default_factory=list)
    """Cited numbers that name no context block (dropped)."""
    attributions: list[Attribution] = field(default_factory=list)
    not_found: bool = False
    """True when the reply says the documents do not hold the answer."""
    relevance: float | None = None
    """The best dense similarity between the query and a retrieved chunk (None: no dense scores)."""
    on_topic: float | None = None
    """P(the question is about the documents) by the fitted relevance gate (None: the gate was off)."""
    gated: bool = False
    """True when NOT_FOUND came from a relevance gate (--relevance-gate, --min-relevance), not the model."""
    dropped: list[Hit] = field(default_factory=list)
    prompt_tokens: int = 0

    def to_dict(self, root: str | Path | None = None) -> dict[str, Any]:
        """JSON-ready: the text, sources (label, snippet, score), citations and the hits used."""
        return {
            "question": self.question,
            "query": self.query,
            "answer": self.text,
            "not_found": self.not_found,
            "gated": self.gated,
            "relevance": self.relevance,
            "on_topic": self.on_topic,
            "sources": [_source_dict(s, root) for s in self.sources],
            "citations": self.citations,
            "invalid_citations": self.invalid_citations,
            "sentences": [asdict(a) for a in self.attributions],
            "context": [_hit_dict(h, n, root) for n, h in enumerate(self.hits, start=1)],
            "dropped": len(self.dropped),
            "prompt_tokens": self.prompt_tokens,
        }


def _hit_dict(hit: Hit, number: int, root: str | Path | None) -> dict[str, Any]:
    c = hit.chunk
    return {
        "block": number,
        "source": c.source,
        "label": source_label(c, root),
        "page": c.page,
        "heading_path": list(c.heading_path),
        "score": hit.score,
        "rank": hit.rank,
        "text": c.text,
    }


def _source_dict(source: Source, root: str | Path | None) -> dict[str, Any]:
    hit = _hit_dict(source.hit, source.block, root)
    del hit["text"]
    return hit | {"snippet": source.snippet, "support": round(source.score, 4), "sentences": source.sentences}
