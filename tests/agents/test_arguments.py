"""Argument policies: spans and numbers of the conversation, the copy-constrained schema, the optional-parameter
policy, and sampled calls from a tiny random model that only ever copy values from the message."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Literal

import pytest
import torch
from fakes import ScriptedEngine

from llmlab.agents.arguments import (
    copy_schema,
    distinct_items,
    longer_spans,
    numbers,
    spans,
    stated,
    stated_schema,
    unit_numbers,
    unit_schema,
    words,
)
from llmlab.agents.caller import COPY_BELOW, CallerConfig, ToolCaller
from llmlab.agents.json_constraint import tool_call_constraint
from llmlab.agents.parsing import ToolCall, parse_tool_calls
from llmlab.agents.tools import tool
from llmlab.agents.validation import validate
from llmlab.errors import ConfigError
from llmlab.generation import Engine, GenerationConfig


def test_words_drop_the_punctuation_around_them() -> None:
    text = 'Read "config.yaml" for me, please. Then fetch https://example.com/a?b=1 (now)!'
    assert [text[a:b] for a, b in words(text)] == [
        "Read", "config.yaml", "for", "me", "please", "Then", "fetch", "https://example.com/a?b=1", "now",
    ]  # fmt: skip


def test_spans_are_runs_of_whole_words() -> None:
    got = spans(["Weather in New York, please."], max_words=3)
    assert got == [
        "Weather", "Weather in", "Weather in New", "in", "in New", "in New York", "New", "New York",
        "New York, please", "York", "York, please", "please",
    ]  # fmt: skip
    assert "New Yo" not in got and "York," not in got


def test_numbers_in_digits_and_words() -> None:
    assert numbers(["Convert 1,000 dollars and 3.5 euros, twelve times; -4 degrees"]) == [1000, 3.5, -4, 12]
    assert numbers(["no numbers here"]) == []


def test_copy_schema_narrows_strings_and_numbers_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "expression": {"type": "string", "format": "arithmetic"},
            "days": {"type": "integer", "default": 1},
            "ratio": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "exact": {"type": "boolean"},
        },
        "required": ["city"],
    }
    got = copy_schema(schema, ["Oslo", "in Oslo"], [2, 0.5])
    p = got["properties"]
    assert p["city"] == {"type": "string", "enum": ["Oslo", "in Oslo"]}
    assert p["unit"] == schema["properties"]["unit"] and p["expression"] == schema["properties"]["expression"]
    assert p["days"]["enum"] == [2, 1]  # the numbers written, then the default; 0.5 is no integer
    assert p["ratio"]["enum"] == [2, 0.5]
    assert p["tags"]["items"]["enum"] == ["Oslo", "in Oslo"]
    assert p["exact"] == {"type": "boolean"}
    # nothing in the message fits the type: the value stays free
    free = copy_schema(schema, [], [])["properties"]
    assert "enum" not in free["city"] and "enum" not in free["ratio"] and free["days"]["enum"] == [1]


def test_stated_keeps_optional_parameters_the_message_states() -> None:
    unit = {"type": "string", "enum": ["celsius", "fahrenheit"]}
    assert stated("unit", unit, "Weather in Oslo in Fahrenheit")
    assert stated("max_results", {"type": "integer"}, "give me 5 results")
    assert not stated("unit", unit, "Weather in Oslo")
    assert not stated("days", {"type": "integer"}, "Weather in Oslo")
    params = {
        "type": "object",
        "properties": {
            "unit": unit,
            "city": {"type": "string"},
            "days": {"type": "integer"},
        },
        "required": ["city"],
    }
    days = stated_schema(params, "Oslo for 3 days")
    assert (list(days["properties"]), days["required"]) == (["city", "days"], ["city", "days"])
    celsius = stated_schema(params, "Oslo in celsius")
    assert (list(celsius["properties"]), celsius["required"]) == (["city", "unit", "days"], ["city", "unit"])
    plain = stated_schema(params, "Oslo")  # the unit's default stands; days is left to the model
    assert (list(plain["properties"]), plain["required"]) == (["city", "days"], ["city"])


@tool
def weather(city: str, days: int = 1) -> str:
    """Weather forecast."""
    return city


@tool
def forecast(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Weather forecast."""
    return city


@tool
def book_table(
    restaurant: str, people: int, seating: Literal["inside", "terrace"] = "inside", notes: str = ""
) -> str:
    """Book a table.

    Args:
        restaurant: the restaurant's name.
        people: how many people.
        seating: where to sit.
        notes: anything the restaurant should know.
    """
    return restaurant


@pytest.fixture(scope="module")
def engine(tiny_tok, tiny_model):
    return Engine(tiny_model, tiny_tok, precision="fp32")


MESSAGE = "Book Chez Marie for 4 people, a birthday."


def sample(engine, tiny_tok, tools, n: int = 12) -> list[ToolCall]:
    budget = 96
    hook = tool_call_constraint(
        tiny_tok, tools, "required", max_tokens=budget, eos_ids=sorted(engine.eos_ids)
    )
    prompt = f"<|im_start|>user\n{MESSAGE}<|im_end|>\n<|im_start|>assistant\n"
    config = GenerationConfig(max_new_tokens=budget, temperature=1.0, top_p=1.0, seed=5)
    texts = [c.text for c in engine.generate([prompt] * n, config, allowed_tokens=hook)]
    return [c for t in texts for c in parse_tool_calls(t, [book_table]).calls]


def test_copied_calls_only_hold_values_from_the_message(engine, tiny_tok) -> None:
    """A random model samples 12 calls under the narrowed schema: each validates against the tool's own
    schema, each string is a run of whole words of the message and each number one it writes; the optional
    enum `seating` is left out (the message states no value of it), the optional `notes` is the model's
    choice. Without the policies, the same model invents strings."""
    params = copy_schema(stated_schema(book_table.parameters, MESSAGE), spans([MESSAGE]), numbers([MESSAGE]))
    narrowed = dataclasses.replace(book_table, parameters=params)
    allowed = set(spans([MESSAGE]))
    calls = sample(engine, tiny_tok, [narrowed])
    assert len(calls) == 12
    for call in calls:
        assert call.error is None and validate(call.arguments, book_table.parameters) == []
        assert {"restaurant", "people"} <= set(call.arguments) <= {"restaurant", "people", "notes"}
        assert call.arguments["restaurant"] in allowed and call.arguments["people"] == 4
        assert call.arguments.get("notes", "Chez") in allowed
    free = sample(engine, tiny_tok, [book_table])
    assert all(c.error is None for c in free)
    assert sum(c.arguments["restaurant"] not in allowed for c in free) >= 6


def test_the_caller_copies_instead_of_inventing(tiny_tok) -> None:
    """The scripted model wants to write "Rome" and 7 days; with copy_arguments the grammar turns them into
    values of the message (the fake engine takes the lowest allowed token where its own is masked); without,
    they pass."""
    wants = '<tool_call>\n{"name": "weather", "arguments": {"city": "Rome", "days": 7}}\n</tool_call>'
    engine = ScriptedEngine(tiny_tok, lambda p: wants)
    user = [{"role": "user", "content": "Weather in Oslo for 3 days?"}]
    copied = ToolCaller(engine, [weather], CallerConfig(copy_arguments=True)).reply(user, "required")
    (call,) = copied.calls
    assert call.error is None and call.arguments["city"] in spans([user[0]["content"]])
    assert call.arguments["days"] in (3, 1)  # a number of the message, or the default
    free = ToolCaller(engine, [weather], CallerConfig(copy_arguments=False)).reply(user, "required")
    assert free.calls[0].arguments == {"city": "Rome", "days": 7}


def test_longer_spans_continue_a_copied_value() -> None:
    found = spans(["Tell me the weather in Buenos Aires."])
    assert longer_spans("Buenos", found) == ["Buenos", "Buenos Aires"]
    assert longer_spans("Aires", found) == [] and longer_spans(3, found) == []


@pytest.mark.parametrize(("favoured", "city"), [("Buenos Aires", "Buenos Aires"), ("Buenos", "Buenos")])
def test_a_copied_string_cut_short_is_rescored_against_its_longer_spans(
    tiny_tok, monkeypatch, favoured: str, city: str
) -> None:
    """Greedy decoding under the span grammar wrote "Buenos" (SmolLM2 spells it B|ue|n|os there, then
    closes the string); the value and the spans that continue it are scored whole, in the tokenizer's own
    tokenization, and the likeliest is written."""
    import llmlab.agents.caller as caller_module

    seen: list[list[str]] = []

    def scores(engine, prefix, continuations, keep=None):
        seen.append(list(continuations))
        return [(0.0 if c == f"{json.dumps(favoured)}}}" else -3.0, 2) for c in continuations]

    monkeypatch.setattr(caller_module, "shared_prefix_logprobs", scores)
    wants = '<tool_call>\n{"name": "weather", "arguments": {"city": "Buenos"}}\n</tool_call>'
    user = [{"role": "user", "content": "Tell me the weather in Buenos Aires."}]
    caller = ToolCaller(
        ScriptedEngine(tiny_tok, lambda p: wants), [weather], CallerConfig(copy_arguments=True)
    )
    (call,) = caller.reply(user, "required").calls
    assert seen == [['"Buenos"}', '"Buenos Aires"}']]
    assert call.error is None and call.arguments == {"city": city}


def test_optional_parameters_follow_the_message(tiny_tok) -> None:
    """The scripted model wants to write a unit the message does not state (left out: its default stands),
    and none where the message states one (the grammar makes it write it)."""
    with_unit = (
        '<tool_call>\n{"name": "forecast", "arguments": {"city": "Oslo", "unit": "fahrenheit"}}\n</tool_call>'
    )
    engine = ScriptedEngine(tiny_tok, lambda p: with_unit)
    user = [{"role": "user", "content": "Weather in Oslo?"}]
    config = CallerConfig(copy_arguments=False)
    assert ToolCaller(engine, [forecast], config).reply(user, "required").calls[0].arguments == {
        "city": "Oslo"
    }
    model = CallerConfig(copy_arguments=False, optional_arguments="model")
    assert ToolCaller(engine, [forecast], model).reply(user, "required").calls[0].arguments == {
        "city": "Oslo",
        "unit": "fahrenheit",
    }
    without = ScriptedEngine(tiny_tok, lambda p: with_unit.replace(', "unit": "fahrenheit"', ""))
    user = [{"role": "user", "content": "Weather in Oslo, in Celsius?"}]
    (call,) = ToolCaller(without, [forecast], config).reply(user, "required").calls
    assert call.error is None and set(call.arguments) == {"city", "unit"}


def test_copy_is_on_by_default_for_small_models_only(engine) -> None:
    assert ToolCaller(engine, [book_table]).copy  # the tiny model: far under a billion parameters
    assert not ToolCaller(engine, [book_table], CallerConfig(copy_arguments=False)).copy
    big = SimpleNamespace(model=SimpleNamespace(parameters=lambda: [torch.empty(COPY_BELOW)]))
    assert not ToolCaller(big, [book_table]).copy


def test_bad_argument_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--optional-arguments must be one of stated, model, got 'some'"):
        CallerConfig(optional_arguments="some")
    with pytest.raises(ConfigError, match="copy_arguments must be True, False or None"):
        CallerConfig(copy_arguments="yes")  # type: ignore[arg-type]


# Fixes chosen on the train half of bench/data/agents/domain.jsonl (domain functions in BFCL's style).


def test_a_spaced_minus_gives_the_negative_number_too() -> None:
    assert numbers(["Find the roots of 2x^2 + 5x - 3 = 0."]) == [2, 5, 3, 0, -3]
    assert numbers(["b = -3 and 10 - 4"]) == [-3, 10, 4, -4]
    assert numbers(["pages 3-5"]) == [3, 5]  # a range is not a minus sign


def test_numbers_for_a_number_parameter_are_floats() -> None:
    schema = {"type": "array", "items": {"type": "number"}}
    items = copy_schema(schema, [], [2, 4.5, 2.0])["items"]
    assert items["enum"] == [2.0, 4.5] and json.dumps(items["enum"]) == "[2.0, 4.5]"
    assert copy_schema({"type": "integer"}, [], [2, 4.5])["enum"] == [2]


def _numeric(*names: str) -> dict[str, object]:
    return {"type": "object", "properties": {n: {"type": "number", "enum": []} for n in names}}


def test_unit_words_give_numbers_to_the_parameters_they_name() -> None:
    text = "Estimate the daily calorie needs of a 45 year old male, 82 kg and 180 cm."
    assert unit_numbers([text]) == [(45, "year"), (82, "kg"), (180, "cm")]
    # a number joined to the next by "and", "or" or a comma shares its unit; a function word is no unit
    assert unit_numbers(["Set timers for 5 and 12 minutes.", "2, 3 or 4 days", "$5000 at 4%"]) == [
        (5, "minutes"), (12, "minutes"), (2, "days"), (3, "days"), (4, "days"),
    ]  # fmt: skip
    params = _numeric("age", "weight_kg", "height_cm")
    for sub in params["properties"].values():  # type: ignore[attr-defined]
        sub["enum"] = [45.0, 82.0, 180.0]
    narrowed = unit_schema(params, unit_numbers([text]))["properties"]
    assert {k: v["enum"] for k, v in narrowed.items()} == {
        "age": [45.0], "weight_kg": [82.0], "height_cm": [180.0],
    }  # fmt: skip


def test_a_unit_word_goes_to_the_shortest_name_it_fits() -> None:
    text = "If I invest $5000 at an annual rate of 0.04 for 10 years, how much will I have?"
    params = _numeric("principal", "annual_rate", "years", "compounds_per_year")
    for sub in params["properties"].values():  # type: ignore[attr-defined]
        sub["enum"] = [5000.0, 0.04, 10.0]
    narrowed = unit_schema(params, unit_numbers([text]))["properties"]
    assert narrowed["years"]["enum"] == [10.0]
    assert narrowed["principal"]["enum"] == narrowed["compounds_per_year"]["enum"] == [5000.0, 0.04]
    only = _numeric("years")
    only["properties"]["years"]["enum"] = [10.0]  # type: ignore[index]
    assert unit_schema(only, [(5, "kg")]) == only  # nothing named: unchanged


def test_a_word_that_names_another_parameter_does_not_state_this_one() -> None:
    schema = {"type": "integer", "default": 1}
    assert stated("compounds_per_year", schema, "for 10 years")
    assert not stated("compounds_per_year", schema, "for 10 years", others=["years", "principal"])


def test_a_stated_enum_value_is_the_only_one_left() -> None:
    unit = {"type": "string", "enum": ["km", "miles"], "default": "km"}
    params = {
        "type": "object",
        "properties": {"origin": {"type": "string"}, "unit": unit},
        "required": ["origin"],
    }
    miles = stated_schema(params, "How far is it from Madrid to Berlin in miles?")
    assert miles["properties"]["unit"]["enum"] == ["miles"] and miles["required"] == ["origin", "unit"]
    both = {"type": "string", "enum": ["celsius", "fahrenheit", "kelvin"]}
    params = {"type": "object", "properties": {"a": both, "b": both}, "required": ["a", "b"]}
    said = stated_schema(params, "Convert 98.6 degrees fahrenheit to celsius.")["properties"]
    assert said["a"]["enum"] == said["b"]["enum"] == ["celsius", "fahrenheit"]
    # An adverb states its adjective ("moderately active": moderate, and active), an underscore is a space,
    # and a short value is not found inside a longer word ("on" in "only").
    level = {"type": "string", "enum": ["sedentary", "light", "moderate", "very_active", "active", "on"]}
    params = {"type": "object", "properties": {"activity": level}, "required": []}
    said = stated_schema(params, "She is moderately active, only at weekends.")["properties"]
    assert said["activity"]["enum"] == ["moderate", "active"]
    said = stated_schema(params, "He is very active.")["properties"]
    assert said["activity"]["enum"] == ["very_active", "active"]


def test_a_copied_list_holds_each_value_once() -> None:
    got = {
        "name": "Road Trip",
        "songs": ["Hotel California", "Africa", "Hotel California and Africa", "Africa", "Road Trip", "and"],
        "values": [4.0, 4.0],
    }
    assert distinct_items(got) == {
        "name": "Road Trip",
        "songs": ["Hotel California", "Africa"],
        "values": [4.0, 4.0],
    }
    assert distinct_items({"tags": ["and"]}) == {"tags": ["and"]}  # nothing left: kept as written
