"""Scoring rules of the Berkeley Function Calling Leaderboard's AST checker, Python categories; our implementation.

BFCL (Patil et al., "The Berkeley Function Calling Leaderboard (BFCL): From Tool Use to Agentic Evaluation of
Large Language Models", ICML 2025) scores a model's decoded calls against "possible answers": for each
parameter of the expected call, the list of accepted values, where "" means the parameter may be left out.
This module implements the rules its AST checker (bfcl_eval/eval_checker/ast_eval/ast_checker.py, at the
commit named in bench/data/bfcl/README.md) applies to Python functions, written for llmlab from those rules:

1. Count. `simple_python` and `multiple`: exactly one call; `multiple` checks it against the function the
   answer names. `parallel`: as many calls as answers, each answer matched to a different call in any order
   (answers taken in turn, each to the first still-unmatched call that passes, as BFCL does).
2. Name: the call names the answer's function (our tools keep BFCL's dotted names, so no renaming).
3. Parameters: every required parameter is given; every given parameter is declared by the function and
   named by the answer; every answer parameter left out accepts "".
4. Types (`PYTHON_TYPES`): a value has exactly the declared type (a bool is not an integer); an integer is
   accepted for a float; an array's items have the declared item type. When the accepted values themselves
   have another type than the declared one (an answer that names a variable), a value of either type passes
   and is compared as it is (rule 5 does not normalise it).
5. Values (`MATCHERS`): strings equal one accepted string after `normalise` (lower case; spaces and
   `, . / - _ * ^` removed; `'` read as `"`); a list equals one accepted list, its strings normalised
   ("" accepts the empty list);
   a dict matches one accepted dict key by key (every key accepted, each value, normalised if a string, among
   the accepted values for its key, every left-out key accepting ""); a list of dicts has the length of an
   accepted list and matches it dict by dict; anything else (numbers, booleans) equals an accepted value.
6. `irrelevance`: correct when no call is decoded (BFCL's eval_runner rule), scored in bench/agents.py.

Departures: a declared type outside `PYTHON_TYPES` (BFCL's data has none in these categories) is reported
as a failure instead of raising; an array whose items declare no type skips the item check; an optional
array (its accepted values include "") skips the item check, as BFCL's does. Only Python categories: no Java
or JavaScript type conversion. Tests: tests/agents/test_bfcl_checker.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list, "dict": dict,
    "any": str,
}  # fmt: skip
_IGNORED = re.compile(r"[ ,./\-_*^]")


def normalise(text: str) -> str:
    """BFCL's string normalisation: lower case, without spaces and `, . / - _ * ^`, single quotes as double."""
    return _IGNORED.sub("", text).lower().replace("'", '"')


def _norm(value: Any) -> Any:
    return normalise(value) if isinstance(value, str) else value


def _answer_type(accepted: list[Any]) -> type | None:
    """The type of the first accepted value that is not the "may be omitted" marker."""
    return next((type(a) for a in accepted if a != ""), None)


def _match_string(value: str, accepted: list[Any]) -> bool:
    return normalise(value) in [normalise(a) for a in accepted if isinstance(a, str)]


def _match_list(value: list[Any], accepted: list[Any]) -> bool:
    # "" (may be omitted) reads as the empty list here, as in BFCL, where it is iterated like a list
    lists = [[] if a == "" else a for a in accepted]
    return [_norm(v) for v in value] in [[_norm(v) for v in a] for a in lists if isinstance(a, list)]


def _match_dict(value: dict[str, Any], accepted: list[Any]) -> bool:
    def one(expected: dict[str, Any]) -> bool:
        given_ok = all(
            k in expected and _norm(v) in [_norm(a) for a in expected[k]] for k, v in value.items()
        )
        return given_ok and all(k in value or "" in v for k, v in expected.items())

    return any(one(a) for a in accepted if isinstance(a, dict))


def _match_dict_list(value: list[Any], accepted: list[Any]) -> bool:
    def one(expected: list[Any]) -> bool:
        return len(value) == len(expected) and all(
            _match_dict(v, [e]) for v, e in zip(value, expected, strict=True)
        )

    return any(one(a) for a in accepted if isinstance(a, list))


MATCHERS: dict[str, Callable[[Any, list[Any]], bool]] = {
    "string": _match_string,
    "list": _match_list,
    "dict": _match_dict,
    "list of dicts": _match_dict_list,
    "other": lambda value, accepted: value in accepted,
}


def _items_typed(value: list[Any], item_type: type, accepted: list[Any]) -> bool:
    """Every item has the declared item type, or the type of the accepted list's items (rule 4)."""
    for answer in accepted:
        if not isinstance(answer, list):
            return True  # "" (optional) or a scalar answer: BFCL checks no items then
        alternative = _answer_type(answer)
        if all(type(v) is item_type or type(v) is alternative for v in value):
            return True
    return False


def check_argument(name: str, value: Any, spec: dict[str, Any], accepted: list[Any]) -> str | None:
    """Why `value` fails parameter `name` (schema `spec`, BFCL types), or None when it passes (rules 4-5)."""
    declared = spec.get("type")
    if declared not in PYTHON_TYPES:
        return f"parameter {name!r}: declared type {declared!r} is not one of BFCL's Python types"
    expected = PYTHON_TYPES[declared]
    if expected is float and type(value) is int:
        value = float(value)
    if declared == "tuple" and type(value) is tuple:
        value = list(value)
    answer_type = _answer_type(accepted)
    variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        item_type = PYTHON_TYPES.get(spec.get("items", {}).get("type", "")) if expected is list else None
        if item_type is not None and not _items_typed(value, item_type, accepted):
            return f"parameter {name!r}: an item of {value!r} is not of type {spec['items']['type']}"
    elif type(value) is answer_type:
        variable = True
    else:
        return f"parameter {name!r}: expected type {declared}, got {type(value).__name__} ({value!r})"
    if variable:
        kind = "other"
    elif expected is list:
        kind = "list of dicts" if spec.get("items", {}).get("type") == "dict" else "list"
    else:
        kind = {str: "string", dict: "dict"}.get(expected, "other")
    if not MATCHERS[kind](value, accepted):
        return f"parameter {name!r}: {value!r} is not one of {accepted!r}"
    return None


def check_call(
    function: dict[str, Any], call: dict[str, dict[str, Any]], answer: dict[str, Any]
) -> str | None:
    """Why the call `{name: arguments}` fails the answer `{name: {param: accepted}}`, or None (rules 2-5)."""
    name = function["name"]
    if name not in call:
        return f"expected a call of {name!r}, got {next(iter(call), None)!r}"
    arguments, accepted = call[name], next(iter(answer.values()))
    properties = function["parameters"].get("properties", {})
    for param in function["parameters"].get("required", []):
        if param not in arguments:
            return f"missing required parameter {param!r}"
    for param, value in arguments.items():
        if param not in properties or param not in accepted:
            return f"unexpected parameter {param!r}"
        reason = check_argument(param, value, properties[param], accepted[param])
        if reason is not None:
            return reason
    for param, values in accepted.items():
        if param not in arguments and "" not in values:
            return f"parameter {param!r} is left out but the answer needs it"
    return None


def _function(functions: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any] | None:
    name = next(iter(answer))
    return next((f for f in functions if f["name"] == name), None)


def check(
    functions: list[dict[str, Any]], calls: list[dict[str, Any]], answers: list[dict[str, Any]], category: str
) -> str | None:
    """Why the decoded `calls` ([{name: arguments}]) fail the item, or None when they are correct (rule 1).

    Args:
        functions: the item's function descriptions, as BFCL writes them (BFCL types, not JSON Schema).
        calls: the decoded calls, in the order written.
        answers: the item's `ground_truth` ([{name: {param: [accepted values]}}]).
        category: "simple_python", "multiple" or "parallel".
    """
    if category not in ("simple_python", "multiple", "parallel"):
        raise ValueError(f"category {category!r}: expected simple_python, multiple or parallel")
    if len(calls) != len(answers):
        return f"expected {len(answers)} call(s), got {len(calls)}"
    if category == "simple_python":
        return check_call(functions[0], calls[0], answers[0])
    matched: set[int] = set()
    for i, answer in enumerate(answers):
        function = _function(functions, answer)
        if function is None:
            return f"the answer names {next(iter(answer))!r}, which no function describes"
        found = next(
            (j for j, c in enumerate(calls) if j not in matched and check_call(function, c, answer) is None),
            None,
        )
        if found is None:
            if category == "multiple":
                return check_call(function, calls[0], answer)
            return f"no call matches answer {i} ({next(iter(answer))})"
        matched.add(found)
    return None
