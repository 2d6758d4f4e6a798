"""Tools: a typed Python function with a docstring becomes a JSON schema in the OpenAI function format.

    @tool
    def convert(amount: float, unit: Literal["km", "mi"] = "km") -> str:
        '''Convert a distance.

        Args:
            amount: the distance to convert.
            unit: the unit of `amount`.
        '''

    convert.schema() == {"type": "function", "function": {"name": "convert", "description": "Convert a distance.",
        "parameters": {"type": "object", "properties": {"amount": {"type": "number", "description": ...},
        "unit": {"type": "string", "enum": ["km", "mi"], "default": "km", ...}}, "required": ["amount"],
        "additionalProperties": False}}}

Type hints map to JSON Schema as pydantic and the OpenAI SDK map them, written inline (no `$defs`): int ->
integer, float -> number, str -> string, bool -> boolean, Literal / Enum -> enum, list[X] / tuple[X, ...] ->
array, dict[str, X] -> object with additionalProperties, X | None -> anyOf [X, null], a dataclass -> a nested
object, Annotated[X, {...}] -> X's schema with the dict's keywords added (e.g. {"format": "arithmetic"}).
Parameter descriptions come from the Google-style `Args:` section; a dataclass's fields from the docstring
written under each field. Tests: tests/agents/test_tools.py (schemas equal hand-written ones).
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import itertools
import re
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.errors import ConfigError

Schema = dict[str, Any]
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PRIMITIVES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True)
class ToolExample:
    """A worked example for the prompt: a request, the arguments it should get, optionally the tool's result
    and the final answer."""

    request: str
    arguments: dict[str, Any]
    result: str | None = None
    answer: str | None = None


@dataclass
class Tool:
    """A function the model may call: its name, description and parameter schema, and the code to run.

    `fn` is None for a tool known only by its schema (e.g. one sent by an API client); such a tool can be
    offered to the model and its calls parsed and validated, but not run.
    """

    name: str
    description: str
    parameters: Schema = field(default_factory=lambda: {"type": "object", "properties": {}})
    fn: Callable[..., Any] | None = None
    timeout: float = 10.0
    """Seconds a call may take before the agent gives up on it."""
    examples: list[ToolExample] = field(default_factory=list)
    reads: bool = False
    """The tool looks information up (a search, a file, a page); plans run such tools first."""

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(
                f"tool name {self.name!r} is not allowed; use 1-64 letters, digits, '_', '.' or '-'"
            )
        if self.parameters.get("type", "object") != "object":
            raise ConfigError(f"tool {self.name}: parameters must be a JSON schema of type object")
        if not self.timeout > 0:
            raise ConfigError(f"tool {self.name}: timeout must be > 0 seconds, got {self.timeout}")

    def schema(self) -> Schema:
        """The OpenAI `tools` entry: {"type": "function", "function": {name, description, parameters}}."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise ConfigError(f"tool {self.name} has only a schema, no function to run")
        return self.fn(*args, **kwargs)

    @classmethod
    def from_schema(cls, entry: Mapping[str, Any]) -> Tool:
        """A schema-only Tool from an OpenAI `tools` entry or a bare {name, description, parameters}. An
        llmlab extra: the function's `examples`, [{"request", "arguments", "result"?, "answer"?}], become
        the Tool's worked examples (shown to the model as earlier turns, as the built-in tools' are)."""
        if entry.get("type") == "function" and isinstance(entry.get("function"), Mapping):
            entry = entry["function"]
        name = entry.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"a tool needs a string 'name', got {entry!r}")
        params = entry.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, Mapping):
            raise ConfigError(f"tool {name}: 'parameters' must be a JSON schema object, got {params!r}")
        examples = [_example(name, e) for e in entry.get("examples") or []]
        return cls(name, str(entry.get("description") or ""), dict(params), examples=examples)


def _example(name: str, entry: Any) -> ToolExample:
    fields = {"request", "arguments", "result", "answer"}
    ok = isinstance(entry, Mapping) and set(entry) <= fields and isinstance(entry.get("request"), str)
    if not ok or not isinstance(entry.get("arguments"), Mapping):
        raise ConfigError(
            f'tool {name}: each of \'examples\' must be {{"request": str, "arguments": object, "result"?: str, '
            f'"answer"?: str}}, got {entry!r}'
        )
    optional = {k: str(entry[k]) for k in ("result", "answer") if entry.get(k) is not None}
    return ToolExample(entry["request"], dict(entry["arguments"]), **optional)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float = 10.0,
    examples: Sequence[ToolExample] = (),
    reads: bool = False,
) -> Any:
    """Decorator: `@tool` or `@tool(name=..., timeout=...)` turns a typed, documented function into a Tool."""

    def wrap(f: Callable[..., Any]) -> Tool:
        summary, arg_docs = parse_docstring(inspect.getdoc(f) or "")
        if not (description or summary):
            raise ConfigError(
                f"{_where(f)}: tool {f.__name__} has no docstring; the model reads it to choose the tool, "
                "so write one line saying what it does"
            )
        params = function_parameters(f, arg_docs)
        return Tool(name or f.__name__, description or summary, params, f, timeout, list(examples), reads)

    return wrap(fn) if fn is not None else wrap


def as_tool(item: Tool | Callable[..., Any] | Mapping[str, Any]) -> Tool:
    """A Tool from a Tool, a plain typed function, or an OpenAI schema dict."""
    if isinstance(item, Tool):
        return item
    if isinstance(item, Mapping):
        return Tool.from_schema(item)
    if callable(item):
        return typing.cast(Tool, tool(item))
    raise ConfigError(f"expected a Tool, a function or an OpenAI tool dict, got {type(item).__name__}")


def tool_schemas(tools: Sequence[Tool | Callable[..., Any] | Mapping[str, Any]]) -> list[Schema]:
    """The OpenAI `tools` list for any mix of Tools, functions and schema dicts (names must be unique)."""
    out = [as_tool(t) for t in tools]
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"tool names must be unique; repeated: {', '.join(dupes)}")
    return [t.schema() for t in out]


def function_parameters(fn: Callable[..., Any], arg_docs: Mapping[str, str] | None = None) -> Schema:
    """The `parameters` object schema of a function from its type hints, defaults and `Args:` docs."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:
        raise ConfigError(f"{_where(fn)}: cannot read the type hints of {fn.__name__}: {e}") from e
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"{_where(fn)}: tool {fn.__name__} cannot take *{param.name}; name each argument"
            )
        if param.name not in hints:
            raise ConfigError(
                f"{_where(fn)}: parameter {param.name!r} of {fn.__name__} has no type hint; add one "
                "(e.g. `{param.name}: str`) so the model knows what to pass"
            )
        default = dataclasses.MISSING if param.default is param.empty else param.default
        properties[param.name] = _property(hints[param.name], (arg_docs or {}).get(param.name), default)
        if default is dataclasses.MISSING:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _property(tp: Any, doc: str | None, default: Any) -> Schema:
    schema = dict(schema_for_type(tp))
    if doc:
        schema = {"description": doc, **schema} if "anyOf" in schema else {**schema, "description": doc}
    if default is not dataclasses.MISSING:
        schema["default"] = _json_value(default)
    return schema


def schema_for_type(tp: Any) -> Schema:
    """JSON Schema for one Python type hint (see the module docstring for the mapping)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:  # Annotated[str, {"format": "arithmetic"}]: the dicts add keywords
        extra = {k: v for meta in tp.__metadata__ if isinstance(meta, Mapping) for k, v in meta.items()}
        return {**schema_for_type(args[0]), **extra}
    if tp is Any or tp is object:
        return {}
    if tp is type(None):
        return {"type": "null"}
    if tp in PRIMITIVES:
        return {"type": PRIMITIVES[tp]}
    if origin is typing.Literal:
        return _enum_schema(list(args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([m.value for m in tp])
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return dataclass_schema(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        alts = [schema_for_type(a) for a in rest]
        if len(rest) < len(args):
            alts.append({"type": "null"})
        return {"anyOf": alts}
    if tp in (list, tuple, set, frozenset) or origin in (list, set, frozenset, Sequence):
        return {"type": "array", "items": schema_for_type(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_for_type(args[0])}
        raise ConfigError(f"fixed-length tuple {tp} is not supported; use tuple[X, ...] or a dataclass")
    if tp is dict or origin in (dict, Mapping):
        if args and args[0] is not str:
            raise ConfigError(f"{tp}: JSON object keys are strings; use dict[str, ...]")
        return (
            {"type": "object", "additionalProperties": schema_for_type(args[1])}
            if args
            else {"type": "object"}
        )
    raise ConfigError(
        f"type {tp!r} has no JSON schema here; use int, float, str, bool, Literal, Enum, list, dict, "
        "Optional or a dataclass"
    )


def _enum_schema(values: list[Any]) -> Schema:
    kinds = {PRIMITIVES.get(type(v)) for v in values}
    if None in kinds:
        raise ConfigError(f"enum values must be str, int, float or bool, got {values!r}")
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}


def dataclass_schema(cls: type) -> Schema:
    """A nested object schema for a dataclass: its fields, their docstrings, required unless defaulted."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = field_docs(cls)
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        properties[f.name] = _property(hints[f.name], docs.get(f.name), default)
        if default is dataclasses.MISSING:
            required.append(f.name)
    schema: Schema = {"type": "object", "properties": properties, "required": required}
    summary = (inspect.getdoc(cls) or "").split("\n\n")[0].strip()
    if summary and not summary.startswith(f"{cls.__name__}("):  # not dataclass's generated signature
        schema["description"] = " ".join(summary.split())
    schema["additionalProperties"] = False
    return schema


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal written under it)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")
ARG_LINE = re.compile(r"^(\s*)(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(summary, {argument: description}) from a Google-style docstring (`Args:` lines `name (type): text`)."""
    summary: list[str] = []
    args: dict[str, list[str]] = {}
    section, current, arg_indent = "", "", -1
    for line in doc.splitlines():
        if not line.strip():
            continue
        head = SECTION.match(line) if not line[0].isspace() else None
        if head:
            section, current, arg_indent = head.group(1), "", -1
        elif not section:
            summary.append(line.strip())
        elif section in ("Args", "Arguments", "Parameters"):
            m = ARG_LINE.match(line)
            indent = len(line) - len(line.lstrip())
            if m and (arg_indent < 0 or indent <= arg_indent):
                current, arg_indent = m.group(2), indent
                args[current] = [m.group(3).strip()]
            elif current:
                args[current].append(line.strip())
    return " ".join(summary), {k: " ".join(" ".join(v).split()) for k, v in args.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_value(dataclasses.asdict(value))
    if isinstance(value, tuple | list | set | frozenset):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(f"default value {value!r} is not JSON; use None, a number, a string, a list or a dict")


def _where(fn: Callable[..., Any]) -> str:
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", "tool")
