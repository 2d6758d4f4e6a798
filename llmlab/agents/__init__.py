"""Tool use and agents: tools from typed functions, tool-call parsing, constrained tool calls, the agent loop.

@tool                                   tools.py: a typed, documented function -> OpenAI function schema
parse_tool_calls(text, tools)           parsing.py: calls found leniently, checked strictly
tool_call_constraint(tokenizer, tools)  json_constraint.py: the engine hook that keeps calls valid
ToolCaller(engine, tools).reply(...)    caller.py: one assistant turn with tool calls
Agent(engine, tools).run("task")        loop.py: reason -> act -> observe, with its trace
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Tool": "llmlab.agents.tools",
    "ToolExample": "llmlab.agents.tools",
    "tool": "llmlab.agents.tools",
    "tool_schemas": "llmlab.agents.tools",
    "as_tool": "llmlab.agents.tools",
    "ToolCall": "llmlab.agents.parsing",
    "ParsedReply": "llmlab.agents.parsing",
    "parse_tool_calls": "llmlab.agents.parsing",
    "tool_call_constraint": "llmlab.agents.json_constraint",
    "json_schema_constraint": "llmlab.agents.json_constraint",
    "TokenConstraint": "llmlab.agents.json_constraint",
    "CallerConfig": "llmlab.agents.caller",
    "Reply": "llmlab.agents.caller",
    "ToolCaller": "llmlab.agents.caller",
    "Agent": "llmlab.agents.loop",
    "AgentConfig": "llmlab.agents.loop",
    "AgentResult": "llmlab.agents.loop",
    "builtin_tools": "llmlab.agents.builtin",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmlab.agents' has no attribute {name!r}")
