"""The built-in tool set: names, their limits as arguments, rag_search's passages and now's format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmlab.agents.builtin import BUILTIN_NAMES, builtin_tools
from llmlab.agents.builtin.clock import now
from llmlab.agents.builtin.rag_search import rag_search_tool
from llmlab.errors import ConfigError
from llmlab.rag.types import Chunk, Hit


class FakeStore:
    def __init__(self) -> None:
        self.queries: list[tuple[str, str, int]] = []

    def search(self, query: str, mode: str = "hybrid", top_k: int = 5) -> list[Hit]:
        self.queries.append((query, mode, top_k))
        chunk = Chunk(
            "The kettle holds 1.7 litres.\n\nDescale it monthly.",
            "notes/kettle.md",
            "markdown",
            0,
            heading_path=("Kettle",),
        )
        return [Hit(chunk, 0.9, 1)]


def test_builtin_tools_by_name(tmp_path: Path) -> None:
    tools = builtin_tools(list(BUILTIN_NAMES), store=FakeStore(), root=tmp_path, allow_hosts=["example.com"])
    assert [t.name for t in tools] == list(BUILTIN_NAMES)
    assert all(t.examples and t.description for t in tools)
    with pytest.raises(
        ConfigError, match=r"--tools: unknown tool\(s\) calc; built-in tools: calculator, now"
    ):
        builtin_tools(["calc"])
    with pytest.raises(ConfigError, match="rag_search needs a store: pass --store NAME"):
        builtin_tools(["rag_search"])
    with pytest.raises(ConfigError, match="--allow-host"):
        builtin_tools(["http_get"])


def test_rag_search_returns_numbered_passages() -> None:
    store = FakeStore()
    search = rag_search_tool(store, top_k=2)
    assert (
        search("kettle size")
        == "[1] notes/kettle.md › Kettle: The kettle holds 1.7 litres. Descale it monthly."
    )
    assert store.queries == [("kettle size", "hybrid", 2)]


def test_now() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\w+day\)", now())
    assert "Asia/Tokyo" in now("Asia/Tokyo")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        now("Mars/Base")
