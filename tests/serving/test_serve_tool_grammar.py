"""The built-in tool-call constraint on a tiny random model: every sampled call parses and validates (the
unconstrained rate is 0 for a random model), each element kind, the token budget, refusals, parsing."""

from __future__ import annotations

import json

import pytest

from llmlab.errors import ConfigError
from llmlab.generation import GenerationConfig
from llmlab.serving.tool_grammar import ToolCallConstraint, call_sequence, parse_calls
from llmlab.serving.tools import render_prompt

TOOLS = [
    {"type": "function", "function": {"name": "convert", "parameters": {"type": "object", "properties": {
        "amount": {"type": "number"}, "unit": {"type": "string", "enum": ["km", "mi"]}, "exact": {"type": "boolean"},
        "count": {"type": "integer"}, "label": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip


def valid(call: dict, tools=TOOLS) -> bool:
    schema = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in tools}[call["name"]]
    kinds = {"number": (int, float), "integer": int, "boolean": bool, "string": str}
    args = call["arguments"]
    return set(args) == set(schema) and all(
        isinstance(args[k], kinds[s["type"]]) and (s["type"] == "boolean" or not isinstance(args[k], bool))
        and args[k] in s.get("enum", [args[k]]) for k, s in schema.items()
    )  # fmt: skip


def constraint(engine, mode="required", max_tokens=200, tools=TOOLS):
    width = engine.model.get_output_embeddings().weight.shape[0]
    return ToolCallConstraint(engine.tokenizer, tools, mode, sorted(engine.eos_ids), width, max_tokens)


def test_every_constrained_call_is_valid_and_unconstrained_none_is(tiny_engine):
    prompt = render_prompt(tiny_engine.tokenizer, [{"role": "user", "content": "Convert 3 km"}], TOOLS)
    config = GenerationConfig(max_new_tokens=200, seed=0, temperature=1.0, top_p=1.0)
    constrained = tiny_engine.generate([prompt] * 8, config, allowed_tokens=constraint(tiny_engine))
    free = tiny_engine.generate([prompt] * 8, config)
    calls = [parse_calls(c.text, TOOLS)[1] for c in constrained]
    assert all(len(found) == 1 and valid(found[0]) for found in calls), [c.text for c in constrained]
    assert {c["name"] for found in calls for c in found} <= {"convert", "ping"}
    assert all(c.finish_reason == "stop" for c in constrained)  # the call closes, then only EOS is allowed
    assert sum(len(parse_calls(c.text, TOOLS)[1]) for c in free) == 0


def test_a_short_budget_still_closes_the_call(tiny_engine):
    hook = constraint(tiny_engine, tools=TOOLS[:1], max_tokens=200)
    need = max(hook.min_tokens((0, 0, "", 0)), 1)
    prompt = render_prompt(tiny_engine.tokenizer, [{"role": "user", "content": "x"}], TOOLS[:1])
    config = GenerationConfig(max_new_tokens=need + 6, seed=1, temperature=1.0, top_p=1.0)
    out = tiny_engine.generate(
        [prompt] * 4, config, allowed_tokens=constraint(tiny_engine, tools=TOOLS[:1], max_tokens=need + 6)
    )
    assert all(len(parse_calls(c.text, TOOLS)[1]) == 1 for c in out), [c.text for c in out]
    with pytest.raises(ConfigError, match="too few for a tool call"):
        constraint(tiny_engine, tools=TOOLS[:1], max_tokens=need - 1)


def test_auto_mode_is_free_until_the_tag(tiny_engine):
    hook = constraint(tiny_engine, mode="auto")
    tok = tiny_engine.tokenizer
    assert hook(0, tok.encode("Hello there", add_special_tokens=False)) is None
    ids = tok.encode('Sure. <tool_call>\n{"name": "', add_special_tokens=False)
    mask = hook(1, ids)
    allowed = {tok.decode([i]) for i in mask.nonzero().flatten().tolist()}
    assert allowed and all("convert".startswith(a) or "ping".startswith(a) for a in allowed)


def test_unsupported_parameter_types_are_refused_by_name():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "items": {"type": "array"}}}}}  # fmt: skip
    with pytest.raises(ConfigError, match="parameter 'items' of type 'array'"):
        call_sequence(tool, "")


def test_parse_calls():
    text = 'I will call it.\n<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>'
    assert parse_calls(text, TOOLS) == ("I will call it.", [{"name": "ping", "arguments": {}}])
    assert parse_calls('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', TOOLS)[1] == []
    assert parse_calls("<tool_call>{broken", TOOLS) == ("", [])
    assert parse_calls("no call here", TOOLS) == ("no call here", [])
    call = json.loads(
        '{"name": "convert", "arguments": {"amount": 1.5, "unit": "km", "exact": true, "count": 2, "label": "x"}}'
    )
    assert valid(call)
