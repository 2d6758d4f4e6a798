"""The argument validator agrees with the jsonschema package; its messages name the argument and the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
import pytest

from llmlab.agents.validation import bind_arguments, check_arguments, validate

SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "minimum": 0, "maximum": 10},
    {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
    {"type": ["string", "null"], "minLength": 2, "maxLength": 4},
    {"type": "string", "pattern": "^[a-z]+$"},
    {"enum": ["a", 1, None, True]},
    {"const": {"x": [1, 2]}},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "object", "properties": {"c": {"type": "string"}}},
        },
        "required": ["a"],
        "additionalProperties": False,
    },
    {"type": "object", "additionalProperties": {"type": "number"}},
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]},
    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]},
    {"allOf": [{"type": "number"}, {"maximum": 3}]},
    {"not": {"type": "string"}},
    {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "#/$defs/pos"}},
]
VALUES: list[Any] = [
    0, 1, 2, 2.0, 2.5, 3, 11, -1, True, False, None, "", "a", "ab", "abcde", "AB", "x1",
    [], [True], [True, False, True], [1, "a"], [1, "a", 2], [0, 1], {"a": 1}, {"a": 1.0}, {"a": "1"},
    {"a": 1, "b": {"c": "x"}}, {"a": 1, "b": {"c": 2}}, {"a": 1, "z": 0}, {}, {"x": [1, 2]}, {"x": [1, 2.0]},
    {"k": 1.5, "j": "no"},
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: str(s)[:40])
def test_agrees_with_jsonschema(schema: dict[str, Any]) -> None:
    checker = jsonschema.Draft202012Validator(schema)
    for value in VALUES:
        assert (validate(value, schema) == []) == checker.is_valid(value), (
            schema,
            value,
            validate(value, schema),
        )


PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("arguments", "errors"),
    [
        ({"city": "Rome"}, []),
        ({}, ["missing required argument(s): city"]),
        ({"city": "Rome", "wind": 3}, ["unexpected argument(s): wind (it takes: city, days, unit)"]),
        ({"city": 3}, ["city: expected string, got 3 (integer)"]),
        ({"city": "Rome", "days": "3"}, ['days: expected integer, got "3" (string)']),
        ({"city": "Rome", "unit": "k"}, ['unit: must be one of "c", "f"; got "k"']),
        ([1], ["arguments of weather must be a JSON object, got [1]"]),
    ],
)
def test_check_arguments_messages(arguments: Any, errors: list[str]) -> None:
    assert check_arguments("weather", arguments, PARAMS) == errors


def test_extra_arguments_allowed_only_when_the_schema_says_so() -> None:
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}
    assert check_arguments("f", {"a": "x", "b": 1}, open_schema) == []
    assert check_arguments("f", {"b": 1}, {"type": "object"}) == []
    assert check_arguments("f", {"b": 1}, {"type": "object", "properties": {}}) == [
        "unexpected argument(s): b (it takes: none)"
    ]


class Unit(enum.Enum):
    C = "c"
    F = "f"


@dataclass
class Point:
    x: float
    y: float = 0.0


def test_bind_arguments_builds_python_values() -> None:
    def f(
        u: Unit, p: Point, ps: list[Point], n: float, opt: Point | None = None, k: Literal["a"] = "a"
    ) -> None:
        """Doc."""

    bound = bind_arguments(
        f, {"u": "f", "p": {"x": 1}, "ps": [{"x": 2, "y": 3}], "n": 4, "opt": None, "k": "a"}
    )
    assert bound == {"u": Unit.F, "p": Point(1, 0.0), "ps": [Point(2, 3)], "n": 4.0, "opt": None, "k": "a"}
    assert isinstance(bound["n"], float)
