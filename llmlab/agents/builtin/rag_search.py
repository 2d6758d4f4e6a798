"""`rag_search`: hybrid search (BM25 + dense) over a llmlab RAG store, results as numbered passages."""

from __future__ import annotations

from typing import Any

from llmlab.agents.tools import Tool, ToolExample, tool

MAX_CHARS = 600


def format_hits(hits: list[Any], max_chars: int = MAX_CHARS) -> str:
    """Numbered passages with their source (relative to the current folder when under it):
    `[1] notes/kettle.md › Descaling: text...`."""
    import os

    from llmlab.rag.result import source_label

    if not hits:
        return "no results"
    lines = []
    for i, hit in enumerate(hits, start=1):
        text = " ".join(hit.chunk.text.split())
        text = text if len(text) <= max_chars else text[: max_chars - 3] + "..."
        lines.append(f"[{i}] {source_label(hit.chunk, os.getcwd())}: {text}")
    return "\n".join(lines)


def rag_search_tool(store: Any, top_k: int = 1, mode: str = "hybrid") -> Tool:
    """`rag_search` over `store`: a `llmlab.rag.Store`, or a --store value (name, path or URL) opened on
    first use. One passage by default: a small model reading three took its numbers from the wrong one
    (measured on the project's two-step tasks)."""
    opened: list[Any] = []

    def get_store() -> Any:
        if not opened:
            from llmlab.rag.store import Store

            opened.append(Store.open(store) if isinstance(store, str) else store)
        return opened[0]

    @tool(
        name="rag_search",
        reads=True,
        timeout=60.0,
        examples=[
            ToolExample(
                "What do my notes say about the refund policy?",
                {"query": "refund policy"},
                "[1] policies.md › Refunds: Refunds are paid within 14 days of the request.",
                "Refunds are paid within 14 days of the request.",
            )
        ],
    )
    def rag_search(query: str) -> str:
        """Look up facts in the user's notes and documents.

        Args:
            query: what to look for, in a few words, e.g. "descaling a kettle".
        """
        return format_hits(get_store().search(query, mode=mode, top_k=top_k))

    return rag_search
