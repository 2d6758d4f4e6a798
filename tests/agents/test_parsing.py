"""Hand-written tricky replies map to the right call, or to a clear error; nothing raises."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from llmlab.agents.parsing import parse_tool_calls
from llmlab.agents.tools import tool


@tool
def calculator(expression: str) -> str:
    """Compute arithmetic."""
    return expression


@tool
def weather(city: str, unit: Literal["c", "f"] = "c", days: int = 1) -> str:
    """Weather forecast."""
    return city


TOOLS = [calculator, weather]
CALC = {"name": "calculator", "arguments": {"expression": "2+3"}}


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        ('<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>', "", [CALC]),
        # a thought before, code fences inside, text after
        (
            'Let me compute.\n<tool_call>\n```json\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n```\n'
            "</tool_call> Done.",
            "Let me compute.\n Done.",
            [CALC],
        ),
        # missing closing tag, two calls
        (
            '<tool_call>{"name": "weather", "arguments": {"city": "Oslo"}}<tool_call>{"name": "calculator", '
            '"arguments": {"expression": "2+3"}}',
            "",
            [{"name": "weather", "arguments": {"city": "Oslo"}}, CALC],
        ),
        # the closing tag inside a JSON string does not end the call
        (
            '<tool_call>{"name": "calculator", "arguments": {"expression": "</tool_call>"}}</tool_call>',
            "",
            [{"name": "calculator", "arguments": {"expression": "</tool_call>"}}],
        ),
        # OpenAI shapes: tool_calls list with arguments as a JSON string
        (
            '{"tool_calls": [{"id": "call_7", "type": "function", "function": {"name": "calculator", '
            '"arguments": "{\\"expression\\": \\"2+3\\"}"}}]}',
            "",
            [CALC],
        ),
        # Llama 3 style "parameters", bare in the text with trailing chatter
        (
            'Sure: {"name": "calculator", "parameters": {"expression": "2+3"}} hope this helps',
            "Sure:  hope this helps",
            [CALC],
        ),
        # a JSON list in a code fence
        ('```json\n[{"name": "calculator", "arguments": {"expression": "2+3"}}]\n```', "", [CALC]),
        # Mistral
        ('[TOOL_CALLS] [{"name": "calculator", "arguments": {"expression": "2+3"}}]</s>', "", [CALC]),
        # Python call syntax (the BFCL prompt format)
        ('calculator(expression="2+3")', "", [CALC]),
        (
            '[weather(city="Oslo", days=2), calculator(expression="2+3")]',
            "",
            [{"name": "weather", "arguments": {"city": "Oslo", "days": 2}}, CALC],
        ),
        # the budget ended the text inside the closing tag; other text after the JSON stays
        ('<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</too', "", [CALC]),
        ('<tool_call>{"name": "calculator", "arguments": {"expression": "2+3"}} hello', "hello", [CALC]),
        # no call at all: JSON that is not a call stays text
        ('The answer is {"x": 1}.', 'The answer is {"x": 1}.', []),
        ("Paris is the capital of France.", "Paris is the capital of France.", []),
    ],
)
def test_calls_found(text: str, content: str, calls: list[dict]) -> None:
    reply = parse_tool_calls(text, TOOLS)
    assert reply.content == content
    assert [{"name": c.name, "arguments": c.arguments} for c in reply.calls] == calls
    assert reply.errors == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '<tool_call>{"name": "calc", "arguments": {}}</tool_call>',
            "unknown tool 'calc'; the tools are: calculator, weather",
        ),
        (
            '<tool_call>{"name": "calculator", "arguments": {}}</tool_call>',
            "calculator: missing required argument(s): expression",
        ),
        (
            '<tool_call>{"name": "weather", "arguments": {"city": "Oslo", "wind": 3}}</tool_call>',
            "weather: unexpected argument(s): wind (it takes: city, unit, days)",
        ),
        (
            '<tool_call>{"name": "weather", "arguments": {"city": "Oslo", "days": "2"}}</tool_call>',
            'weather: days: expected integer, got "2" (string)',
        ),
        (
            '<tool_call>{"name": "weather", "arguments": {"city": "Oslo"</tool_call>',
            "the tool call is not valid JSON (Expecting ',' delimiter at character 49)",
        ),
        (
            '<tool_call>{"name": "weather", "arguments": "{city: Oslo}"}</tool_call>',
            "the arguments of weather are not valid JSON",
        ),
        (
            '<tool_call>{"name": "weather", "arguments": [1]}</tool_call>',
            "the arguments of weather must be a JSON object, got [1]",
        ),
        (
            "<tool_call>I should check the weather</tool_call>",
            "the tool call is not valid JSON (no JSON object found)",
        ),
        (
            '<tool_call>{"tool": "weather"}</tool_call>',
            'the tool call must be {"name": ..., "arguments": {...}}',
        ),
    ],
)
def test_bad_calls_become_clear_errors(text: str, error: str) -> None:
    reply = parse_tool_calls(text, TOOLS)
    assert len(reply.calls) == 1 and reply.valid_calls == []
    assert reply.calls[0].error is not None and reply.calls[0].error.startswith(error), reply.calls[0].error


def test_openai_shape_and_unchecked_calls() -> None:
    reply = parse_tool_calls('<tool_call>{"name": "anything", "arguments": {"a": [1, "é"]}}</tool_call>')
    (call,) = reply.calls
    assert call.error is None  # no tools given: found, not checked
    shape = call.openai()
    assert shape["type"] == "function" and shape["id"].startswith("call_")
    assert shape["function"]["name"] == "anything"
    assert json.loads(shape["function"]["arguments"]) == {"a": [1, "é"]}
    assert reply.openai_tool_calls() == [shape]


@pytest.mark.parametrize(
    "text", ["", "<tool_call>", "{" * 5000, "[" * 100 + "]", "calculator(" * 300, "\x00\ud800"]
)
def test_garbage_never_raises(text: str) -> None:
    reply = parse_tool_calls(text, TOOLS)
    assert all(c.error for c in reply.calls)
