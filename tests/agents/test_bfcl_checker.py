"""bench/bfcl_checker.py: BFCL's AST checking rules (Python), hand-derived cases for each rule of its docstring.

The functions and answers are written here in BFCL's format (BFCL types, `ground_truth` lists of accepted
values, "" for "may be left out"); no BFCL data is used.
"""

from __future__ import annotations

import pytest
from benchkit import bench_module

checker = bench_module("bfcl_checker")
check, check_argument, normalise = checker.check, checker.check_argument, checker.normalise

AREA = {
    "name": "geometry.area",
    "parameters": {
        "type": "dict",
        "properties": {
            "shape": {"type": "string"},
            "size": {"type": "float"},
            "count": {"type": "integer"},
            "units": {"type": "string"},
        },
        "required": ["shape", "size"],
    },
}
AREA_ANSWER = [
    {"geometry.area": {"shape": ["circle"], "size": [2.0], "count": [1, ""], "units": ["cm", "centimetres"]}}
]


def area(**arguments: object) -> list[dict[str, object]]:
    return [{"geometry.area": arguments}]


def test_normalise_drops_spaces_and_punctuation_and_lowers() -> None:
    assert normalise("San Francisco, CA") == "sanfranciscoca"
    assert normalise("e.g. A-B_C/D*E^F") == "egabcdef"
    assert normalise("it's") == 'it"s'


def test_simple_call_rules() -> None:
    ok = area(shape="Circle", size=2.0, units="CM")
    assert check([AREA], ok, AREA_ANSWER, "simple_python") is None  # strings compared normalised
    assert check([AREA], area(shape="circle", size=2, units="cm"), AREA_ANSWER, "simple_python") is None
    assert (
        check([AREA], area(shape="circle", size=2.0, units="cm", count=1), AREA_ANSWER, "simple_python")
        is None
    )
    cases = {
        "expected 1 call(s), got 2": ok + ok,
        "expected a call of 'geometry.area', got 'area'": [{"area": {"shape": "circle", "size": 2.0}}],
        "missing required parameter 'size'": area(shape="circle", units="cm"),
        "unexpected parameter 'colour'": area(shape="circle", size=2.0, units="cm", colour="red"),
        "parameter 'units' is left out but the answer needs it": area(shape="circle", size=2.0),
        "parameter 'size': 3.0 is not one of [2.0]": area(shape="circle", size=3, units="cm"),
        "parameter 'shape': 'square' is not one of ['circle']": area(shape="square", size=2.0, units="cm"),
        "parameter 'count': expected type integer, got bool (True)": area(
            shape="circle", size=2.0, units="cm", count=True
        ),
        "parameter 'size': expected type float, got str ('2')": area(shape="circle", size="2", units="cm"),
    }
    for reason, calls in cases.items():
        assert check([AREA], calls, AREA_ANSWER, "simple_python") == reason


def test_lists_are_compared_whole_and_item_types_checked() -> None:
    spec = {"type": "array", "items": {"type": "string"}}
    accepted = [["G", "C"], ["C", "G"]]
    assert check_argument("bases", ["c", "g"], spec, accepted) is None
    assert (
        check_argument("bases", ["G"], spec, accepted)
        == "parameter 'bases': ['G'] is not one of [['G', 'C'], ['C', 'G']]"
    )
    ints = {"type": "array", "items": {"type": "integer"}}
    assert (
        check_argument("xs", [1, "2"], ints, [[1, 2]])
        == "parameter 'xs': an item of [1, '2'] is not of type integer"
    )
    assert check_argument("xs", [1, "2"], ints, [[1, 2], ""]) is not None  # the value check still fails
    assert check_argument("xs", [], ints, [[1, 2], ""]) is None  # "" accepts the empty list
    assert check_argument("xs", [1.0, 2.0], ints, [[1.0, 2.0]]) is None  # items of the answer's own type


def test_dicts_and_lists_of_dicts_match_key_by_key() -> None:
    spec = {"type": "dict", "properties": {}}
    accepted = [{"city": ["Paris", "paris, france"], "days": [3, ""]}]
    assert check_argument("trip", {"city": "Paris, France"}, spec, accepted) is None
    assert check_argument("trip", {"city": "paris", "days": 3}, spec, accepted) is None
    assert check_argument("trip", {"city": "Rome"}, spec, accepted) is not None
    assert check_argument("trip", {"city": "Paris", "hotel": "x"}, spec, accepted) is not None
    assert check_argument("trip", {"days": 3}, spec, accepted) is not None  # city cannot be left out
    rows = {"type": "array", "items": {"type": "dict"}}
    accepted_rows = [[{"name": ["a"]}, {"name": ["b"]}]]
    assert check_argument("rows", [{"name": "A"}, {"name": "B"}], rows, accepted_rows) is None
    assert check_argument("rows", [{"name": "b"}, {"name": "a"}], rows, accepted_rows) is not None
    assert check_argument("rows", [{"name": "a"}], rows, accepted_rows) is not None


def test_an_answer_of_another_type_is_compared_as_is() -> None:
    """Declared integer, answer the variable name "n": the string "n" passes, "N" does not (no normalising),
    and an integer still type-checks but equals no accepted value."""
    spec = {"type": "integer"}
    assert check_argument("k", "n", spec, ["n"]) is None
    assert check_argument("k", "N", spec, ["n"]) == "parameter 'k': 'N' is not one of ['n']"
    assert check_argument("k", 4, spec, ["n"]) == "parameter 'k': 4 is not one of ['n']"
    assert check_argument("k", 4, {"type": "number"}, [4]) is not None  # not a BFCL type


def test_parallel_calls_match_in_any_order_and_multiple_uses_the_answers_function() -> None:
    weather = {
        "name": "weather",
        "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    answers = [{"weather": {"city": ["Oslo"]}}, {"weather": {"city": ["Rome"]}}]
    calls = [{"weather": {"city": "rome"}}, {"weather": {"city": "oslo"}}]
    assert check([weather], calls, answers, "parallel") is None
    assert check([weather], calls[:1], answers, "parallel") == "expected 2 call(s), got 1"
    twice = [{"weather": {"city": "oslo"}}, {"weather": {"city": "oslo"}}]
    assert check([weather], twice, answers, "parallel") == "no call matches answer 1 (weather)"
    clock = {"name": "clock", "parameters": {"type": "dict", "properties": {}, "required": []}}
    assert check([clock, weather], [{"weather": {"city": "Oslo"}}], answers[:1], "multiple") is None
    assert (
        check([clock, weather], [{"clock": {}}], answers[:1], "multiple")
        == "expected a call of 'weather', got 'clock'"
    )
    with pytest.raises(ValueError, match="category 'irrelevance'"):
        check([weather], [], [], "irrelevance")


def test_bfcl_functions_become_json_schema_tools() -> None:
    """bench/agents.py presents BFCL functions as BFCL does to function-calling models."""
    bfcl_tools = bench_module("agents").bfcl_tools

    function = {
        "name": "stats.mean",
        "description": "Mean of numbers.",
        "parameters": {
            "type": "dict",
            "properties": {
                "numbers": {"type": "array", "items": {"type": "float"}, "description": "The numbers."},
                "weight": {"type": "float", "description": "A weight."},
                "options": {
                    "type": "dict",
                    "properties": {"mode": {"type": "tuple", "items": {"type": "any"}}},
                },
                "label": {"description": "no type given"},
            },
            "required": ["numbers"],
        },
    }
    (tool,) = bfcl_tools([function])
    assert tool.name == "stats.mean"
    assert tool.description == "Mean of numbers. Note that the provided function is in Python 3 syntax."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "numbers": {"type": "array", "items": {"type": "number"}, "description": "The numbers."},
            "weight": {
                "type": "number",
                "format": "float",
                "description": "A weight. This is a float type value.",
            },
            "options": {
                "type": "object",
                "properties": {"mode": {"type": "array", "items": {"type": "string"}}},
            },
            "label": {"type": "string", "description": "no type given"},
        },
        "required": ["numbers"],
    }
    assert function["parameters"]["type"] == "dict"  # the item itself is left as it was
