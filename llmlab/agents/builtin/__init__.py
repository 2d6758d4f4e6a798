"""Built-in tools: calculator, now, rag_search, read_file, list_dir, http_get.

`builtin_tools(names, store=..., root=..., allow_hosts=...)` builds the named ones; those that reach outside
the process take their limits as arguments (the store to search, the root folder, the allowed hosts).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llmlab.agents.builtin.calculator import calculator
from llmlab.agents.builtin.clock import now
from llmlab.agents.tools import Tool
from llmlab.errors import ConfigError

BUILTIN_NAMES = ("calculator", "now", "rag_search", "read_file", "list_dir", "http_get")


def builtin_tools(
    names: Sequence[str],
    *,
    store: Any = None,
    root: str | os.PathLike[str] | None = None,
    allow_hosts: Sequence[str] = (),
) -> list[Tool]:
    """The built-in tools called `names`, in that order.

    Args:
        store: the RAG store for rag_search (a `Store` or a --store value).
        root: the folder read_file and list_dir are confined to.
        allow_hosts: the hosts http_get may fetch from.
    """
    unknown = [n for n in names if n not in BUILTIN_NAMES]
    if unknown:
        raise ConfigError(
            f"--tools: unknown tool(s) {', '.join(unknown)}; built-in tools: {', '.join(BUILTIN_NAMES)}"
        )
    out: list[Tool] = []
    for name in dict.fromkeys(names):
        if name == "calculator":
            out.append(calculator)
        elif name == "now":
            out.append(now)
        elif name == "rag_search":
            from llmlab.agents.builtin.rag_search import rag_search_tool

            if store is None:
                raise ConfigError("rag_search needs a store: pass --store NAME (see `llmlab rag ingest`)")
            out.append(rag_search_tool(store))
        elif name in ("read_file", "list_dir"):
            from llmlab.agents.builtin.files import file_tools

            read_file, list_dir = file_tools(root if root is not None else os.getcwd())
            out.append(read_file if name == "read_file" else list_dir)
        else:
            from llmlab.agents.builtin.http import http_tool

            out.append(http_tool(allow_hosts))
    return out
