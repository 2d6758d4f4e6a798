"""Schemas from type hints equal hand-written expected schemas (OpenAI function format)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from llmlab.agents.tools import (
    Tool,
    ToolExample,
    as_tool,
    parse_docstring,
    schema_for_type,
    tool,
    tool_schemas,
)
from llmlab.errors import ConfigError


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass
class Address:
    """A postal address."""

    street: str
    """Street and number."""
    city: str = "Paris"
    zip_code: int | None = None


@dataclass
class Order:
    items: list[str]
    address: Address
    notes: dict[str, str] = field(default_factory=dict)


def test_primitive_and_container_types() -> None:
    assert schema_for_type(int) == {"type": "integer"}
    assert schema_for_type(float) == {"type": "number"}
    assert schema_for_type(str) == {"type": "string"}
    assert schema_for_type(bool) == {"type": "boolean"}
    assert schema_for_type(list[int]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_for_type(tuple[float, ...]) == {"type": "array", "items": {"type": "number"}}
    assert schema_for_type(dict[str, bool]) == {"type": "object", "additionalProperties": {"type": "boolean"}}
    assert schema_for_type(Any) == {}
    assert schema_for_type(Literal["a", "b"]) == {"type": "string", "enum": ["a", "b"]}
    assert schema_for_type(Literal[1, 2]) == {"type": "integer", "enum": [1, 2]}
    assert schema_for_type(Color) == {"type": "string", "enum": ["red", "green"]}
    assert schema_for_type(int | None) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert schema_for_type(int | str) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


def test_function_schema_equals_hand_written() -> None:
    @tool
    def book(
        city: str,
        nights: int,
        budget: float = 120.0,
        breakfast: bool = False,
        room: Literal["single", "double"] = "double",
        color: Color | None = None,
        tags: list[str] | None = None,
        order: Order | None = None,
    ) -> str:
        """Book a hotel room.

        Longer explanation on a second paragraph.

        Args:
            city: where to stay.
            nights (int): how many nights,
                at least one.
            budget: the most to pay per night.
            breakfast: include breakfast.
            room: the kind of room.
            color: a favourite colour.
            tags: labels for the booking.
            order: an order to deliver to the room.

        Returns:
            A confirmation.
        """
        return city

    address = {
        "type": "object",
        "properties": {
            "street": {"type": "string", "description": "Street and number."},
            "city": {"type": "string", "default": "Paris"},
            "zip_code": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
        "required": ["street"],
        "description": "A postal address.",
        "additionalProperties": False,
    }
    order = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "string"}},
            "address": address,
            "notes": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
        },
        "required": ["items", "address"],
        "additionalProperties": False,
    }
    expected = {
        "type": "function",
        "function": {
            "name": "book",
            "description": "Book a hotel room. Longer explanation on a second paragraph.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "where to stay."},
                    "nights": {"type": "integer", "description": "how many nights, at least one."},
                    "budget": {
                        "type": "number",
                        "description": "the most to pay per night.",
                        "default": 120.0,
                    },
                    "breakfast": {"type": "boolean", "description": "include breakfast.", "default": False},
                    "room": {
                        "type": "string",
                        "enum": ["single", "double"],
                        "description": "the kind of room.",
                        "default": "double",
                    },
                    "color": {
                        "description": "a favourite colour.",
                        "anyOf": [{"type": "string", "enum": ["red", "green"]}, {"type": "null"}],
                        "default": None,
                    },
                    "tags": {
                        "description": "labels for the booking.",
                        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                        "default": None,
                    },
                    "order": {
                        "description": "an order to deliver to the room.",
                        "anyOf": [order, {"type": "null"}],
                        "default": None,
                    },
                },
                "required": ["city", "nights"],
                "additionalProperties": False,
            },
        },
    }
    assert book.schema() == expected
    assert book("Rome", 2) == "Rome"  # the Tool still calls the function


def test_decorator_options_and_plain_functions() -> None:
    def area(width: float, height: float) -> float:
        """Area of a rectangle."""
        return width * height

    t = tool(area, name="rect_area", timeout=2.5)
    assert (t.name, t.description, t.timeout) == ("rect_area", "Area of a rectangle.", 2.5)
    assert as_tool(area).name == "area"
    assert [s["function"]["name"] for s in tool_schemas([t, area])] == ["rect_area", "area"]


def test_schema_only_tools_from_openai_dicts() -> None:
    entry = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
    }
    t = Tool.from_schema(entry)
    assert (t.name, t.description, t.fn) == ("f", "", None)
    assert Tool.from_schema({"name": "g", "description": "d"}).parameters == {
        "type": "object",
        "properties": {},
    }
    with pytest.raises(ConfigError, match="only a schema"):
        t()


def test_examples_in_an_openai_dict_become_worked_examples() -> None:
    """The llmlab extra `examples` (what the server passes on from a request's tools)."""
    example = {
        "request": "Weather in Oslo?",
        "arguments": {"city": "Oslo"},
        "result": "4 C",
        "answer": "4 C.",
    }
    t = Tool.from_schema({"name": "w", "description": "weather", "examples": [example]})
    assert t.examples == [ToolExample("Weather in Oslo?", {"city": "Oslo"}, "4 C", "4 C.")]
    assert "examples" not in t.schema()["function"]
    with pytest.raises(ConfigError, match=r"tool w: each of 'examples' must be \{\"request\": str"):
        Tool.from_schema({"name": "w", "examples": [{"request": "Oslo", "arguments": "city=Oslo"}]})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(x):\n    '''Doc.'''", "has no type hint"),
        ("def f(x: int):\n    pass", "has no docstring"),
        ("def f(*xs: int):\n    '''Doc.'''", r"cannot take \*xs"),
        ("def f(x: bytes):\n    '''Doc.'''", "has no JSON schema"),
        ("def f(x: dict[int, str]):\n    '''Doc.'''", "keys are strings"),
        ("def f(x: tuple[int, str]):\n    '''Doc.'''", "fixed-length tuple"),
    ],
)
def test_refused_functions_say_why(source: str, message: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(ConfigError, match=message):
        tool(namespace["f"])


def test_bad_names_and_duplicates() -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        Tool("has space", "d")
    with pytest.raises(ConfigError, match="unique; repeated: f"):
        tool_schemas([{"name": "f"}, {"name": "f"}])


def test_docstring_sections() -> None:
    summary, args = parse_docstring(
        "Do it.\n\nArgs:\n    a: first\n        more\n    b (str): second\nRaises:\n    E: never"
    )
    assert summary == "Do it."
    assert args == {"a": "first more", "b": "second"}
