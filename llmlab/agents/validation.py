"""Checking tool-call arguments against a JSON schema, and turning them into Python call arguments.

`validate(value, schema)` implements the JSON Schema keywords tool schemas use (type, enum, const,
properties, required, additionalProperties, items, prefixItems, minItems, maxItems, minimum, maximum,
exclusiveMinimum, exclusiveMaximum, multipleOf, minLength, maxLength, pattern, anyOf, oneOf, allOf, not,
$ref to local $defs, OpenAPI's nullable) and returns readable errors, not exceptions: they become the
observation the model reads. It agrees with the `jsonschema` package (Draft 2020-12) on which values are
valid: tests/agents/test_validation.py::test_agrees_with_jsonschema.

`check_arguments` is stricter at the top level of a call: an argument the schema does not name is an error
unless the schema explicitly allows more (`additionalProperties: true` or a schema), because a Python
function would not accept it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

Schema = Mapping[str, Any]
JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


def json_type(value: Any) -> str:
    """The JSON type name of a decoded JSON value (an integral float counts as integer, as in JSON Schema)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_type(value: Any, name: str) -> bool:
    kind = json_type(value)
    return kind == name or (name == "number" and kind == "integer")


def validate(value: Any, schema: Schema | bool, path: str = "", root: Schema | None = None) -> list[str]:
    """Every way `value` breaks `schema`, as `path: what is wrong` lines (empty when valid)."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{path or 'value'}: no value is allowed here"]
    root = root if root is not None else schema
    where = path or "value"
    if "$ref" in schema:
        return validate(value, _resolve(schema["$ref"], root), path, root)
    if schema.get("nullable") and value is None:
        return []
    errors = _type_errors(value, schema, where)
    if errors:
        return errors
    for check in CHECKS:
        errors += check(value, schema, path, root)
    return errors


def _type_errors(value: Any, schema: Schema, where: str) -> list[str]:
    if "const" in schema and not _equal(value, schema["const"]):
        return [f"{where}: must be {_show(schema['const'])}, got {_show(value)}"]
    if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
        options = ", ".join(_show(e) for e in schema["enum"])
        return [f"{where}: must be one of {options}; got {_show(value)}"]
    types_ = schema.get("type")
    if types_ is None:
        return []
    names = [types_] if isinstance(types_, str) else list(types_)
    if any(_is_type(value, t) for t in names):
        return []
    return [f"{where}: expected {' or '.join(names)}, got {_show(value)} ({json_type(value)})"]


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _object(value: Any, schema: Schema, path: str, root: Schema) -> list[str]:
    if not isinstance(value, dict):
        return []
    errors = [f"{_join(path, k)}: missing (required)" for k in schema.get("required", ()) if k not in value]
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            errors += validate(item, props[key], _join(path, key), root)
        elif extra is False:
            errors.append(f"{_join(path, key)}: not allowed (known: {', '.join(props) or 'none'})")
        elif isinstance(extra, Mapping):
            errors += validate(item, extra, _join(path, key), root)
    return errors


def _array(value: Any, schema: Schema, path: str, root: Schema) -> list[str]:
    if not isinstance(value, list):
        return []
    errors = []
    where = path or "value"
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{where}: needs at least {schema['minItems']} item(s), got {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{where}: allows at most {schema['maxItems']} item(s), got {len(value)}")
    prefix = schema.get("prefixItems", [])
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items", True)
        errors += validate(item, sub, f"{where}[{i}]", root)
    return errors


def _number(value: Any, schema: Schema, path: str, root: Schema) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    where = path or "value"
    bounds = {
        "minimum": (lambda v, b: v >= b, ">="),
        "maximum": (lambda v, b: v <= b, "<="),
        "exclusiveMinimum": (lambda v, b: v > b, ">"),
        "exclusiveMaximum": (lambda v, b: v < b, "<"),
    }
    errors = [
        f"{where}: must be {op} {schema[key]}, got {_show(value)}"
        for key, (ok, op) in bounds.items()
        if key in schema and not ok(value, schema[key])
    ]
    step = schema.get("multipleOf")
    if step and not math.isclose(value / step, round(value / step), abs_tol=1e-9):
        errors.append(f"{where}: must be a multiple of {step}, got {_show(value)}")
    return errors


def _string(value: Any, schema: Schema, path: str, root: Schema) -> list[str]:
    if not isinstance(value, str):
        return []
    where, errors = path or "value", []
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{where}: needs at least {schema['minLength']} character(s)")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{where}: allows at most {schema['maxLength']} character(s), got {len(value)}")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        errors.append(f"{where}: must match the pattern {schema['pattern']!r}, got {_show(value)}")
    return errors


def _combinators(value: Any, schema: Schema, path: str, root: Schema) -> list[str]:
    where, errors = path or "value", []
    for sub in schema.get("allOf", ()):
        errors += validate(value, sub, path, root)
    if "anyOf" in schema:
        results = [validate(value, sub, path, root) for sub in schema["anyOf"]]
        if all(results):
            errors += [f"{where}: matches none of the allowed forms ({'; '.join(r[0] for r in results)})"]
    if "oneOf" in schema:
        passing = sum(not validate(value, sub, path, root) for sub in schema["oneOf"])
        if passing != 1:
            errors.append(f"{where}: must match exactly one allowed form, matches {passing}")
    if "not" in schema and not validate(value, schema["not"], path, root):
        errors.append(f"{where}: must not match {_show(schema['not'])}")
    return errors


CHECKS: tuple[Callable[[Any, Schema, str, Schema], list[str]], ...] = (
    _object,
    _array,
    _number,
    _string,
    _combinators,
)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _resolve(ref: str, root: Schema) -> Schema:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref ('#/$defs/...') is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return typing.cast(Schema, node)


def check_arguments(tool_name: str, arguments: Any, parameters: Schema) -> list[str]:
    """Problems with a call's arguments, phrased for the model: missing, unexpected, mistyped."""
    if not isinstance(arguments, dict):
        return [f"arguments of {tool_name} must be a JSON object, got {_show(arguments)}"]
    props = parameters.get("properties", {})
    extra = parameters.get("additionalProperties")
    strict = extra is False or (extra is None and "properties" in parameters)
    errors = []
    missing = [k for k in parameters.get("required", ()) if k not in arguments]
    if missing:
        errors.append(f"missing required argument(s): {', '.join(missing)}")
    unknown = [k for k in arguments if k not in props] if strict else []
    if unknown:
        errors.append(
            f"unexpected argument(s): {', '.join(unknown)} (it takes: {', '.join(props) or 'none'})"
        )
    inner = {**parameters, "required": [], "additionalProperties": not strict}
    errors += [e for e in validate(arguments, inner) if not e.startswith(tuple(f"{k}:" for k in unknown))]
    return errors


def bind_arguments(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """JSON arguments as the function's types: dataclasses built, Enum members looked up, ints as floats."""
    hints = typing.get_type_hints(fn)
    return {k: to_python(v, hints.get(k, Any)) for k, v in arguments.items()}


def to_python(value: Any, tp: Any) -> Any:
    """One JSON value converted to the Python type hint `tp` (already validated against its schema)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None or tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None):
                try:
                    return to_python(value, arg)
                except (TypeError, ValueError):
                    continue
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{k: to_python(v, hints.get(k, Any)) for k, v in value.items()})
    if origin in (list, tuple, set, frozenset) and isinstance(value, list):
        items = [to_python(v, args[0] if args else Any) for v in value]
        return origin(items) if origin is not list else items
    if origin in (dict, Mapping) and isinstance(value, dict) and len(args) == 2:
        return {k: to_python(v, args[1]) for k, v in value.items()}
    return value
