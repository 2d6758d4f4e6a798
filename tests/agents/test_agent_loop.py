"""The agent loop (react policy) with a scripted model: observations, tool errors and timeouts as text,
limits, trace. The plan policy: tests/agents/test_planning.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fakes import ScriptedEngine

from llmlab.agents.caller import CallerConfig
from llmlab.agents.loop import Agent, AgentConfig, write_trace
from llmlab.agents.tools import tool
from llmlab.errors import ConfigError

TASK = "What is 2+3?"
RUNS: list[str] = []


@tool
def calculator(expression: str) -> str:
    """Compute arithmetic."""
    RUNS.append(expression)
    return str(eval(expression, {"__builtins__": {}}))  # test double: inputs are the test's own


@tool
def broken(x: int) -> str:
    """Always fails."""
    raise ValueError(f"no luck with {x}")


@tool(timeout=0.2)
def slow(x: int) -> str:
    """Never in time."""
    time.sleep(3)
    return "late"


def call(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def results_seen(prompt: str) -> int:
    return prompt.split(TASK)[-1].count("<|im_start|>tool")


def agent(tiny_tok, intend, tools=(calculator,), **config) -> Agent:
    # the scripted calls carry values the task does not write: let them through (copying: test_arguments.py)
    caller = config.pop("caller", CallerConfig(copy_arguments=False))
    config.setdefault("policy", "react")
    engine = ScriptedEngine(
        tiny_tok, intend, score=lambda p, t: 0.0 if p.startswith("Tool: calculator") else -1.0
    )
    return Agent(engine, list(tools), AgentConfig(caller=caller, **config))


def test_call_observe_answer(tiny_tok) -> None:
    def intend(prompt: str) -> str:
        return (
            "I will compute.\n" + call("calculator", {"expression": "2+3"})
            if not results_seen(prompt)
            else "It is 5."
        )

    events: list[dict] = []
    result = agent(tiny_tok, intend).run(TASK, on_event=events.append)
    assert (result.answer, result.stop_reason) == ("It is 5.", "answer")
    (step,) = result.steps
    assert (step.thought, step.call.name, step.call.arguments, step.observation, step.ok) == (
        "I will compute.", "calculator", {"expression": "2+3"}, "5", True
    )  # fmt: skip
    assert [e["type"] for e in events] == ["task", "thought", "action", "observation", "answer"]
    assert events == result.events and result.tokens > 0


@pytest.mark.parametrize(
    ("tools", "first", "observation"),
    [
        ((calculator, broken), call("broken", {"x": 1}), "error: ValueError: no luck with 1"),
        ((calculator, slow), call("slow", {"x": 1}), "error: slow did not finish within 0.2 s"),
    ],
)
def test_tool_failures_become_observations(tiny_tok, tools, first: str, observation: str) -> None:
    name = first.split('"name": "')[1].split('"')[0]

    def intend(prompt: str) -> str:
        return first if not results_seen(prompt) else "Sorry."

    engine_agent = agent(tiny_tok, intend, tools)
    # the model's own choice of tool, with the scripted argument (not a number of the task)
    engine_agent.caller.config = CallerConfig(selection="greedy", copy_arguments=False)
    result = engine_agent.run(TASK)
    (step,) = result.steps
    assert (step.call.name, step.observation, step.ok) == (name, observation, False)
    assert result.answer == "Sorry."


def test_invalid_calls_become_observations(tiny_tok) -> None:
    def intend(prompt: str) -> str:
        return call("calculator", {"expr": "2+3"}) if not results_seen(prompt) else "Gave up."

    result = agent(tiny_tok, intend, caller=CallerConfig(constrain=False)).run(TASK)
    (step,) = result.steps
    assert step.observation == (
        "error: calculator: missing required argument(s): expression; "
        "unexpected argument(s): expr (it takes: expression)"
    )
    assert not step.ok and result.answer == "Gave up."


def test_max_steps_then_a_final_answer_without_tools(tiny_tok) -> None:
    RUNS.clear()

    def intend(prompt: str) -> str:
        if "answer my request in one or two sentences" in prompt:
            return "Five, I think."
        return call("calculator", {"expression": f"{results_seen(prompt)}+1"})

    result = agent(tiny_tok, intend, max_steps=3).run(TASK)
    assert (result.stop_reason, result.answer) == ("max_steps", "Five, I think.")
    assert [s.observation for s in result.steps] == ["1", "2", "3"] and RUNS == ["0+1", "1+1", "2+1"]


def test_a_repeated_call_is_not_run_again(tiny_tok) -> None:
    RUNS.clear()

    def intend(prompt: str) -> str:
        return call("calculator", {"expression": "2+3"}) if results_seen(prompt) < 2 else "5"

    result = agent(tiny_tok, intend).run(TASK)
    assert [s.observation for s in result.steps] == ["5", "(same call as step 1) 5"] and RUNS == ["2+3"]


def test_token_budget(tiny_tok) -> None:
    result = agent(tiny_tok, lambda p: call("calculator", {"expression": "1+1"}), max_tokens=30).run(TASK)
    assert result.stop_reason == "token_budget" and len(result.steps) == 1


def test_trace_is_jsonl(tiny_tok, tmp_path: Path) -> None:
    result = agent(tiny_tok, lambda p: "5").run(TASK)
    write_trace(str(tmp_path / "t.jsonl"), result.events)
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [e["type"] for e in lines] == ["task", "answer"] and lines[1]["text"] == "5"


def test_bad_config_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--max-steps must be >= 0, got -1"):
        AgentConfig(max_steps=-1)
    with pytest.raises(ConfigError, match="--tool-timeout must be > 0 seconds"):
        AgentConfig(tool_timeout=0)
    with pytest.raises(ConfigError, match="--policy must be one of plan, react"):
        AgentConfig(policy="guess")


def test_several_calls_in_one_reply_each_run(tiny_tok) -> None:
    """CallerConfig.parallel (`llmlab agent run --next-call probe|score`): every call of a reply is an action
    with its observation, and the next prompt shows all the results."""
    both = call("calculator", {"expression": "2+3"}) + "\n" + call("calculator", {"expression": "4*5"})

    def intend(prompt: str) -> str:
        return both if not results_seen(prompt) else f"Seen {results_seen(prompt)} results."

    caller = CallerConfig(copy_arguments=False, parallel=True, next_call="probe")
    result = agent(tiny_tok, intend, caller=caller).run(TASK)
    assert [(s.index, s.call.arguments["expression"], s.observation) for s in result.steps] == [
        (1, "2+3", "5"),
        (1, "4*5", "20"),
    ]
    assert result.answer == "Seen 2 results."
    assert [e["type"] for e in result.events] == [
        "task",
        "action",
        "observation",
        "action",
        "observation",
        "answer",
    ]
