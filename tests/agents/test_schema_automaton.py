"""The byte automaton accepts exactly JSON that matches the schema (in its compact form), and `min_close` is
the exact length of the shortest completion (checked by breadth-first search over the automaton)."""

from __future__ import annotations

import json
import random
import re
from collections import deque
from typing import Any

import pytest

from llmlab.agents.builtin.calculator import CalculatorError, evaluate
from llmlab.agents.schema_automaton import Automaton
from llmlab.agents.schema_grammar import DEAD
from llmlab.agents.validation import validate
from llmlab.errors import ConfigError

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer"},
        "score": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "bc", 'b"c']}, "maxItems": 3},
        "ok": {"type": "boolean"},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
        "kind": {"const": "person"},
        "level": {"enum": [1, 2.5, "x", None]},
    },
    "required": ["name", "age"],
}
TREE = {
    "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
    "$ref": "#/$defs/node",
}  # fmt: skip
ANYTHING: dict[str, Any] = {}
CALC = {"type": "object", "properties": {"e": {"type": "string", "format": "arithmetic"}}, "required": ["e"]}
SCHEMAS = {"person": PERSON, "tree": TREE, "any": ANYTHING, "calc": CALC}


def compile_(schema: dict[str, Any]) -> tuple[Automaton, int]:
    auto = Automaton()
    return auto, auto.start(auto.schema(schema))


def accepts(auto: Automaton, start: int, text: str) -> bool:
    state = auto.walk(start, text.encode("utf-8"))
    return state != DEAD and auto.accepting(state)


@pytest.mark.parametrize(
    "text",
    [
        '{"name":"A","age":3}',
        '{"name": "Zoë \\"Z\\" \\u00e9", "age": -12, "score": 1.5e-3, "tags": ["a", "b\\"c"], "ok": true}',
        '{"name":"A","age":0,"score":null,"extra":{"k":1,"j":-2},"kind":"person","level":2.5}',
        '{"name":"A","age":0,"level":null}',
    ],
)
def test_accepts_valid_person(text: str) -> None:
    auto, start = compile_(PERSON)
    assert accepts(auto, start, text)
    assert validate(json.loads(text), PERSON) == []


@pytest.mark.parametrize(
    "text",
    [
        '{"name":"","age":3}',  # minLength 1
        '{"age":3,"name":"A"}',  # properties come in schema order
        '{"name":"A"}',  # age is required
        '{"name":"A","age":3.0}',  # an integer has no fraction
        '{"name":"A","age":03}',  # no leading zeros
        '{"name":"A","age":3,"tags":["a","a","a","a"]}',  # maxItems 3
        '{"name":"A","age":3,"tags":["c"]}',  # not in the enum
        '{"name":"A","age":3,"kind":"animal"}',
        '{"name":"A","age":3,"nope":1}',  # unknown property
        '{"name":"A\nB","age":3}',  # raw control character in a string
        '{"name":"A\\x","age":3}',  # bad escape
        '{"name":"A","age":3,}',
        '{"name" :"A","age":3}',  # spaces only after ':' and ','
        '{"name":"A","age":3} ',
    ],
)
def test_rejects_invalid_person(text: str) -> None:
    auto, start = compile_(PERSON)
    assert not accepts(auto, start, text)


def random_walk(auto: Automaton, start: int, rng: random.Random, length: int) -> bytes:
    """A random accepted text: random live bytes for a while, then the cheapest way to the end."""
    out, state = bytearray(), start
    while True:
        choices = auto.next_bytes(state)
        if auto.accepting(state) and (len(out) >= length or rng.random() < 0.1 or not choices):
            return bytes(out)
        if len(out) >= length:  # head for the end: bytes that bring the end closer
            best = min(auto.min_close(auto.step(state, b)) for b in choices)
            choices = [b for b in choices if auto.min_close(auto.step(state, b)) == best]
        elif rng.random() < 0.5:  # keep strings printable now and then
            choices = [b for b in choices if 0x20 <= b < 0x7F] or choices
        b = rng.choice(choices)
        out.append(b)
        state = auto.step(state, b)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_accepted_text_is_valid_json_for_the_schema(name: str) -> None:
    schema = SCHEMAS[name]
    auto, start = compile_(schema)
    rng = random.Random(0)
    for _ in range(150):
        text = random_walk(auto, start, rng, rng.randint(0, 60))
        value = json.loads(text.decode("utf-8", errors="replace"))
        assert validate(value, schema) == [], text
        if name == "calc":  # the calculator parses every expression the grammar lets through
            try:
                evaluate(value["e"])
            except CalculatorError as e:
                assert not re.search("not an arithmetic|not allowed|without names", str(e)), (text, e)


def shortest_completion(auto: Automaton, state: int) -> int:
    seen, queue = {state}, deque([(state, 0)])
    while queue:
        s, d = queue.popleft()
        if auto.accepting(s):
            return d
        for b in auto.next_bytes(s):
            t = auto.step(s, b)
            if t not in seen:
                seen.add(t)
                queue.append((t, d + 1))
    raise AssertionError("no completion")


@pytest.mark.parametrize("name", ["person", "tree", "calc"])
def test_min_close_is_the_shortest_completion(name: str) -> None:
    auto, start = compile_(SCHEMAS[name])
    rng = random.Random(1)
    for _ in range(25):
        text = random_walk(auto, start, rng, 30)
        state = start
        for i, b in enumerate(text):
            if i % 3 == 0:
                assert auto.min_close(state) == shortest_completion(auto, state), text[:i]
            state = auto.step(state, b)


def test_compact_dumps_of_valid_values_are_accepted() -> None:
    auto, start = compile_(PERSON)
    value = {"name": "Ada", "age": 36, "tags": ["bc"], "extra": {"x": 1}, "level": "x"}
    for separators in ((",", ":"), (", ", ": ")):
        assert accepts(auto, start, json.dumps(value, separators=separators, ensure_ascii=False))


def test_free_text_with_a_trigger() -> None:
    auto = Automaton()
    call = auto.schema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    start = auto.start(auto.free("<go>", then=auto.seq(call, auto.lit("</go>"))))
    assert accepts(auto, start, "")
    assert accepts(auto, start, 'any text < <g <go>{"a":1}</go>')
    assert not accepts(auto, start, 'text <go>{"a":1}')  # started a call: must finish it
    assert auto.walk(start, b"x <go>{oops") == DEAD
    with pytest.raises(ConfigError, match="must not appear again"):
        auto.free("abca")


@pytest.mark.parametrize(
    ("expression", "ok"),
    [("24 * 5", True), ("sqrt(144)", True), ("(1.5 + 2) ** 2 // 3", True), ("2^10", True), ("log10(100)+e", True),
     ("max(1, 2)", True), ("-(3)%2", True), ("24", False), ("pi", False), ("1 +", False), ("x + 1", False),
     ("(1+2", False), ("1+2)", False), ("(1, 2)+1", False), ("max((1, 2))", False), ("sqrt 4", False), ("1..2", False), ("((((((((1))))))))+1", False)],
)  # fmt: skip
def test_arithmetic_strings(expression: str, ok: bool) -> None:
    auto, start = compile_(CALC)
    assert accepts(auto, start, json.dumps({"e": expression})) == ok


def test_arithmetic_with_listed_numbers() -> None:
    """Numbers grounded in the conversation: only these literals, written out in full."""
    auto = Automaton(arithmetic_numbers=(b"24", b"5", b"1.7", b"2"))
    start = auto.start(auto.schema(CALC))
    for expression, ok in [("24 * 5", True), ("1.7*2", True), ("sqrt(24)", True), ("24 * 6", False), ("2 * 1.8", False),
                           ("245 + 2", False), ("1.75 + 2", False), ("1. + 2", False)]:  # fmt: skip
        assert accepts(auto, start, json.dumps({"e": expression})) == ok, expression
    rng = random.Random(2)
    for _ in range(20):
        text = random_walk(auto, start, rng, 30)
        state = start
        for i, b in enumerate(text):
            assert auto.min_close(state) == shortest_completion(auto, state), text[:i]
            state = auto.step(state, b)


def test_unsupported_keywords_fall_back_to_any_json() -> None:
    auto = Automaton()
    start = auto.start(auto.schema({"allOf": [{"type": "string"}, {"maxLength": 3}]}))
    assert accepts(auto, start, '{"x": [1]}') and auto.unsupported
    with pytest.raises(ConfigError, match="unknown JSON schema type"):
        Automaton().schema({"type": "date"})
    with pytest.raises(ConfigError, match="only local references"):
        Automaton().schema({"$ref": "http://example.com/s.json"})
