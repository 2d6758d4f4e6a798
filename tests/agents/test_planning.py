"""The plan policy: sentences routed to tools by channel score, lookups first, the planned sentence as the
thought before each call; numbers in arithmetic arguments come from the conversation."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedEngine

from llmlab.agents.caller import CallerConfig, conversation_numbers
from llmlab.agents.loop import Agent, AgentConfig
from llmlab.agents.planning import make_plan, split_requests
from llmlab.agents.tools import tool

TASK = "How many pages does the printer print in 5 minutes? Look up its speed in my notes."


@tool
def calculator(expression: str) -> str:
    """Calculate a number."""
    return str(eval(expression, {"__builtins__": {}}))  # test double: inputs are the test's own


@tool(reads=True)
def search(query: str) -> str:
    """Look up facts in the user's notes."""
    return "The printer prints 24 pages per minute."


@pytest.mark.parametrize(
    ("task", "parts"),
    [
        (TASK, ["How many pages does the printer print in 5 minutes?", "Look up its speed in my notes."]),
        ("Find the kettle size, then multiply it by 3.", ["Find the kettle size", "multiply it by 3."]),
        ("Search A and then B; C!", ["Search A", "B;", "C!"]),
        ("What is 2.5 + 1?", ["What is 2.5 + 1?"]),
        ("  ", []),
    ],
)
def test_split_requests(task: str, parts: list[str]) -> None:
    assert split_requests(task) == parts


def routed(prompt: str, token: int) -> float:
    """Channel scores (prompt = tool description + NUL + request): the search tool explains sentences about
    notes, the calculator the rest."""
    description, _, request = prompt.partition("\x00")
    return 0.0 if ("notes" in request) == description.startswith("Tool: search") else -1.0


class ChannelEngine(ScriptedEngine):
    """Channel scores depend on the request (the forced continuation) too, so it is passed to `score`."""

    def _one(self, row, prompt, config, hook):
        if prompt.startswith("Tool: ") and config.logprobs:
            request = self.tokenizer.decode(hook.sequences[row])
            return super()._one(row, prompt + "\x00" + request, config, hook)
        return super()._one(row, prompt, config, hook)


def test_plan_routes_sentences_and_runs_lookups_first(tiny_tok) -> None:
    engine = ChannelEngine(tiny_tok, lambda p: "", score=routed)
    plan = make_plan(engine, TASK, [calculator, search])
    assert [(s.tool, s.request) for s in plan] == [
        ("search", "Look up its speed in my notes."),
        ("calculator", "How many pages does the printer print in 5 minutes?"),
    ]


def test_planned_run(tiny_tok) -> None:
    def intend(prompt: str) -> str:
        reply = prompt.rsplit("<|im_start|>assistant\n", 1)[-1]  # starts with the planned thought
        if reply.startswith("Look up"):
            call = {"name": "search", "arguments": {"query": "printer speed"}}
        elif reply.startswith("How many"):
            call = {"name": "calculator", "arguments": {"expression": "24 * 5"}}
        else:
            return "It prints 120 pages."
        return reply.split("\n")[0] + "\n<tool_call>\n" + json.dumps(call) + "\n</tool_call>"

    engine = ChannelEngine(tiny_tok, intend, score=routed)
    caller = CallerConfig(copy_arguments=False)  # "printer speed" is no run of the task's words
    result = Agent(engine, [calculator, search], AgentConfig(caller=caller)).run(TASK)
    assert [e["type"] for e in result.events] == [
        "task", "plan", "thought", "action", "observation", "thought", "action", "observation", "answer"
    ]  # fmt: skip
    assert [(s.call.name, s.call.arguments, s.observation) for s in result.steps] == [
        ("search", {"query": "printer speed"}, "The printer prints 24 pages per minute."),
        ("calculator", {"expression": "24 * 5"}, "120"),
    ]
    assert result.answer == "It prints 120 pages." and result.stop_reason == "answer"
    planned = json.dumps(result.events[1]["steps"])
    assert "Look up its speed" in planned


def test_conversation_numbers() -> None:
    messages = [
        {"role": "system", "content": "Example: 41 times 6"},
        {"role": "user", "content": "What is 15% of 1,240? Then five squared."},
        {"role": "tool", "content": "[1] /tmp/run-195/notes.md: the price is 3.5 euros, see https://x.org/7"},
    ]
    assert conversation_numbers(messages) == ["100", "1240", "15", "2", "3.5", "5"]
