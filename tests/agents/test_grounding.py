"""Grounded answers after tool results (llmlab/agents/grounding.py): the values an answer must hold, the
template and splice repairs, and a scripted model through Agent, ToolCaller and the server's caller, whose
free answer invents the number the calculator returned."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedEngine

from llmlab.agents.caller import CallerConfig, ToolCaller
from llmlab.agents.grounding import ground, holds_results, observations, values
from llmlab.agents.loop import Agent, AgentConfig
from llmlab.agents.tools import tool
from llmlab.errors import ConfigError

TASK = "What is 1234 times 5678?"
INVENTED = "1234 times 5678 is 12345678."  # what SmolLM2-135M wrote after the calculator's 7006652


@tool
def calculator(expression: str) -> str:
    """Compute arithmetic."""
    a, b = expression.split("*")
    return str(int(a) * int(b))


def scripted(tiny_tok) -> ScriptedEngine:
    def intend(prompt: str) -> str:
        if "<|im_start|>tool" not in prompt.split(TASK)[-1]:
            return (
                '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1234*5678"}}\n</tool_call>'
            )
        return INVENTED

    return ScriptedEngine(tiny_tok, intend)


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        ("7006652", ["7006652"]),
        ("100 USD = 90.00 EUR", ["100", "90.00"]),
        ("Sunny, 21 degrees celsius in Paris", ["21"]),
        ("2026-12-06 01:30:12 UTC (Sunday)", ["2026-12-06", "01:30:12"]),
        ('{"temperature": 21, "sky": "clear"}', ["21", "clear"]),
        ("buy milk", ["buy milk"]),
        ("a long listing\n" + "line 1 2 3 4 5\n" * 40, []),  # not one result to quote
        ("word " * 40, []),
    ],
)
def test_values_an_answer_must_hold(observation: str, expected: list[str]) -> None:
    assert values(observation) == expected


def test_observations_are_the_trailing_results_without_errors() -> None:
    messages = [
        {"role": "user", "content": TASK},
        {"role": "tool", "content": "41"},
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "tool", "content": "error: ValueError: no"},
        {"role": "tool", "content": "(same call as step 1) 7006652"},
    ]
    assert observations(messages) == ["7006652"]
    assert observations([*messages, {"role": "assistant", "content": "done"}]) == []


@pytest.mark.parametrize(
    ("style", "answer"),
    [
        ("free", INVENTED),
        ("template", "7006652"),
        ("splice", "1234 times 5678 is 7006652."),
    ],
)
def test_styles_repair_an_invented_number(style: str, answer: str) -> None:
    assert ground(INVENTED, ["7006652"], style, [TASK]) == answer
    assert holds_results(answer, ["7006652"]) == (style != "free")
    assert ground("It is 7006652.", ["7006652"], style, [TASK]) == "It is 7006652."  # held: kept


def test_splice_without_an_invented_number_falls_back_to_the_template() -> None:
    assert ground("I computed it for you.", ["7006652"], "splice", [TASK]) == "7006652"


def test_agent_answer_holds_the_calculator_result(tiny_tok) -> None:
    events: list[dict] = []
    free_config = AgentConfig(caller=CallerConfig(copy_arguments=False, answer_style="free"))
    free = Agent(scripted(tiny_tok), [calculator], free_config)
    assert free.run(TASK).answer == INVENTED  # the model's own answer does not hold 7006652
    auto_config = AgentConfig(caller=CallerConfig(copy_arguments=False))  # the arguments: test_arguments.py
    auto = Agent(scripted(tiny_tok), [calculator], auto_config)  # answer_style auto: the fake model is small
    result = auto.run(TASK, on_event=events.append)
    assert [s.observation for s in result.steps] == ["7006652"]
    assert result.answer == "7006652"
    assert events[-1]["free"] == INVENTED and events[-1]["text"] == "7006652"
    splice_config = AgentConfig(caller=CallerConfig(copy_arguments=False, answer_style="splice"))
    spliced = Agent(scripted(tiny_tok), [calculator], splice_config)
    assert spliced.run(TASK).answer == "1234 times 5678 is 7006652."


@pytest.mark.parametrize(("max_steps", "stop"), [(2, "answer"), (1, "max_steps")])
def test_react_answers_are_grounded_too(tiny_tok, max_steps: int, stop: str) -> None:
    # max_steps 1: the answer comes after FINAL_REQUEST, a user message after the tool result
    caller = CallerConfig(copy_arguments=False, answer_style="splice")
    config = AgentConfig(policy="react", max_steps=max_steps, caller=caller)
    result = Agent(scripted(tiny_tok), [calculator], config).run(TASK)
    assert (result.answer, result.stop_reason) == ("1234 times 5678 is 7006652.", stop)


def test_caller_reply_after_a_tool_message(tiny_tok) -> None:
    messages = [
        {"role": "user", "content": TASK},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "calculator", "arguments": json.dumps({"expression": "1234*5678"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "7006652"},
    ]  # fmt: skip
    caller = ToolCaller(
        scripted(tiny_tok), [calculator], CallerConfig(copy_arguments=False, answer_style="splice")
    )
    reply = caller.reply(messages, "auto")
    assert (reply.calls, reply.content, reply.free) == ([], "1234 times 5678 is 7006652.", INVENTED)
    asked = ToolCaller(scripted(tiny_tok), [calculator], CallerConfig(copy_arguments=False)).reply(
        messages[:1], "auto"
    )
    assert asked.free is None  # no tool result yet: nothing to ground


def test_server_reply_after_a_tool_message_is_grounded(tiny_tok) -> None:
    from llmlab.generation.config import GenerationConfig
    from llmlab.serving.tools import AgentsToolCalling

    messages = [
        {"role": "user", "content": TASK},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "calculator", "arguments": json.dumps({"expression": "1234*5678"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "7006652"},
    ]  # fmt: skip
    tools = [calculator.schema()]
    reply = AgentsToolCalling().reply(
        scripted(tiny_tok), messages, tools, "auto", False, GenerationConfig(greedy=True, max_new_tokens=64)
    )
    assert (reply.calls, reply.content, reply.finish) == ([], "7006652", "stop")


def test_bad_answer_style_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--answer-style must be one of auto, free, template, splice"):
        CallerConfig(copy_arguments=False, answer_style="quote")


def test_a_value_is_held_only_whole() -> None:
    assert holds_results("It is 7006652.", ["7006652"]) and holds_results("15% of it", ["15"])
    assert not holds_results("It is 150.", ["15"]) and not holds_results("1.5 or 215", ["15"])


def test_an_answer_without_tools_ends_before_a_call_the_model_starts(tiny_tok) -> None:
    """The plan policy's answer is asked with tool_choice none: SmolLM2 sometimes goes on with <tool_call>
    markup (seen on the Tokyo time task); the answer is the text before it."""

    def intend(prompt: str) -> str:
        if "<|im_start|>tool" not in prompt.split(TASK)[-1]:
            return (
                '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1234*5678"}}\n</tool_call>'
            )
        return 'It is 7006652.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "1+1"}}'

    config = AgentConfig(caller=CallerConfig(copy_arguments=False, answer_style="free"))
    result = Agent(ScriptedEngine(tiny_tok, intend), [calculator], config).run(TASK)
    assert [s.observation for s in result.steps] == ["7006652"]
    assert result.answer == "It is 7006652."
