"""A plan for small models: each sentence of the task is routed to the tool that best explains it.

    requests = sentences of the task (also split at "then")
    route(r) = argmax over tools and "reply" of log P(r | "Tool: name / What it does: description ...")
    plan     = the routed requests, tools that look things up first, in the task's order otherwise

A 135M model cannot plan a multi-step task by itself: after a lookup it restates what it found instead of
computing with it, and given the whole task it picks one tool for all of it. Routing each sentence with the
channel score (selection.py: Min et al. 2022) splits "How many pages does the printer print in 5 minutes?
Look up its speed in my notes." into a calculator step and a rag_search step; the lookup runs first because
its result is what the computation needs. The planned sentence is written as the thought before its call, so
the model writes the arguments right after reading what the step is for. The model still writes every call's arguments, with the conversation so far in view, and
the final answer. This is Decomposed Prompting's idea (Khot et al., ICLR 2023, arXiv:2210.02406) with the
split done by punctuation and the routing by scores instead of by the model's own plan.
Tests: tests/agents/test_planning.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.agents.selection import channel_scores
from llmlab.agents.tools import Tool

REPLY = Tool("reply", "Answer the user directly from general knowledge, without looking anything up.")
SPLIT = re.compile(r"(?<=[.?!;])\s+|,?\s+(?:and\s+)?then\s+", re.I)


@dataclass
class PlannedStep:
    """A sentence of the task and the tool it was routed to, with the scores behind the choice."""

    request: str
    tool: str
    scores: dict[str, float] = field(default_factory=dict)


def split_requests(task: str) -> list[str]:
    """The task's sentences (and "..., then ..." parts), stripped, without empty ones."""
    return [part.strip() for part in SPLIT.split(task.strip()) if part and part.strip(" .?!;,")]


def make_plan(engine: Any, task: str, tools: Sequence[Tool], reply_option: bool = False) -> list[PlannedStep]:
    """The tool steps for `task`: one per sentence routed to a tool, lookups (tools with `reads`) first.

    Args:
        reply_option: also score a plain reply, and give a sentence no step when it wins (off by default:
            on the project's two-step tasks it took 2 of 11 sentences that needed a tool).
    """
    options = [*tools, REPLY] if reply_option else list(tools)
    steps: list[PlannedStep] = []
    for request in split_requests(task):
        scores = channel_scores(engine, request, options)
        best = max(scores, key=scores.__getitem__)
        if best != REPLY.name:
            steps.append(PlannedStep(request, best, scores))
    reads = {t.name for t in tools if t.reads}
    return [s for s in steps if s.tool in reads] + [s for s in steps if s.tool not in reads]
