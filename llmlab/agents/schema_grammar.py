"""Grammar nodes for constrained decoding, compiled from JSON schemas (the automaton is schema_automaton.py).

A node is one piece of grammar: an object with properties in order, an array, a string (free, an enum, or
an arithmetic expression), a number, a literal, a choice, a sequence, or free text that hands over to
another node after a trigger. `compile_schema` turns the subset of JSON Schema that tool schemas use into
nodes; the byte-level rules of JSON strings, numbers and arithmetic expressions are pure functions here.

String formats llmlab decodes under a grammar: `"format": "arithmetic"`, an expression of numbers, + - * /
// % ** ^, parentheses and the calculator's functions and constants, with at least one operation (a tool that
computes has nothing to do with a bare number). Tests: tests/agents/test_schema_automaton.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError

if TYPE_CHECKING:
    from llmlab.agents.schema_automaton import Automaton

DEAD, UNKNOWN = -1, -2
# Node kinds.
OBJ, ARR, STR, NUM, LIT, ANY, SEQ, FREE = range(8)
# Frame kinds: a frame is a tuple whose first item is one of these.
F_VALUE, F_SPACE, F_LIT, F_STR, F_ENUM, F_NUM, F_OBJ, F_KEY, F_FREEKEY, F_ARR, F_SEQ, F_FREE, F_ARITH = range(
    13
)
OPEN, AFTER_VALUE, AFTER_COMMA = 0, 1, 2
NUM_ENDS = frozenset({1, 2, 4, 7})  # number phases after which the number may end
DIGITS = frozenset(b"0123456789")
HEX = frozenset(b"0123456789abcdefABCDEF")
SIMPLE_ESCAPES = frozenset(b'"\\/bfnrt')
INF = 1 << 30

Stack = tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Node:
    """One grammar node. Which fields matter depends on `kind` (see the comments)."""

    kind: int
    props: tuple[tuple[bytes, int, bool], ...] = ()  # OBJ: (JSON-escaped key, value node, required)
    extra: int = -1  # OBJ without properties: node of each free key's value; -1 for none
    item: int = -1  # ARR: item node
    min_items: int = 0
    max_items: int | None = None
    enum: tuple[bytes, ...] | None = None  # STR: allowed JSON-escaped contents (None: any string)
    min_len: int = 0  # STR: fewest characters (minLength)
    arithmetic: bool = False  # STR: an arithmetic expression ("format": "arithmetic")
    numbers: tuple[bytes, ...] | None = None  # arithmetic: the only number literals allowed (None: any)
    integer: bool = False  # NUM
    text: bytes = b""  # LIT: the bytes; FREE: the trigger (b"" never triggers)
    parts: tuple[int, ...] = ()  # ANY: alternatives; SEQ: parts in order
    then: int = -1  # FREE: node after the trigger
    can_end: bool = True  # FREE: the text may stop without the trigger


def escaped(text: str) -> bytes:
    """The bytes of `text` inside a JSON string literal (without the quotes), as json.dumps writes them."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


def string_byte(esc: int, b: int) -> int | str | None:
    """String content: the next escape state (0 plain, 1 after '\\', 10+n with n hex digits left), "end"
    on the closing quote, None when the byte is not allowed."""
    if esc == 0:
        if b == 0x22:
            return "end"
        if b == 0x5C:
            return 1
        return None if b < 0x20 else 0
    if esc == 1:
        if b in SIMPLE_ESCAPES:
            return 0
        return 14 if b == 0x75 else None  # \u: four hex digits
    if b in HEX:
        return 0 if esc == 11 else esc - 1
    return None


def number_byte(phase: int, b: int, integer: bool) -> int | None:
    """RFC 8259 numbers: 0 after '-', 1 after a leading 0, 2 in the integer part, 3 after '.', 4 in the
    fraction, 5 after 'e', 6 after the exponent's sign, 7 in the exponent. None: the byte is not part of it."""
    digit = b in DIGITS
    if phase == 0:
        return (1 if b == 0x30 else 2) if digit else None
    if phase in (1, 2, 4) and not integer and b in (0x65, 0x45):  # e E
        return 5
    if phase in (1, 2) and not integer and b == 0x2E:  # .
        return 3
    if phase == 2 and digit:
        return 2
    if phase in (3, 4) and digit:
        return 4
    if phase == 5 and b in (0x2B, 0x2D):
        return 6
    if phase in (5, 6, 7) and digit:
        return 7
    return None


# ---- arithmetic expressions inside a JSON string ("format": "arithmetic") -----------------------------------

ARITH_FUNCTIONS = ("sqrt", "log", "log10", "log2", "exp", "sin", "cos", "tan", "asin", "acos", "atan", "abs",
                   "round", "floor", "ceil", "min", "max")  # fmt: skip
ARITH_CONSTANTS = ("pi", "e", "tau")
ARITH_NAMES = ARITH_FUNCTIONS + ARITH_CONSTANTS
MAX_DEPTH = 6
OPERAND, INT, DOT, FRAC, AFTER, OP_STAR, OP_SLASH, NAME, LISTED = range(9)
ARITH_START = (
    OPERAND,
    0,
    0,
    b"",
    0,
)  # (phase, depth, operations so far (0/1), name prefix, call-parens mask)
ARITH_BYTES = frozenset(b'0123456789.()+-*/%^, "' + "".join(ARITH_NAMES).encode())
END = "end"
ArithState = tuple[int, int, int, bytes, int]


def arith_step(
    state: ArithState, b: int, numbers: tuple[bytes, ...] | None = None
) -> ArithState | str | None:
    """One byte of an arithmetic expression: the next state, END on the closing quote, None if not allowed.
    Bit k of the mask says that the parenthesis opened at depth k belongs to a function call (commas allowed).
    With `numbers`, a number must be one of them, written out in full (the prefix so far is kept)."""
    phase, depth, ops, prefix, calls = state
    if numbers is not None and phase in (OPERAND, OP_STAR, OP_SLASH, LISTED) and (b in DIGITS or b == 0x2E):
        longer = (prefix if phase == LISTED else b"") + bytes((b,))
        return (LISTED, depth, ops, longer, calls) if any(n.startswith(longer) for n in numbers) else None
    if phase == LISTED:
        return arith_step((AFTER, depth, ops, b"", calls), b, numbers) if prefix in (numbers or ()) else None
    if phase in (OPERAND, OP_STAR, OP_SLASH):
        if (phase, b) in ((OP_STAR, 0x2A), (OP_SLASH, 0x2F)):  # ** and //
            return (OPERAND, depth, ops, b"", calls)
        if b in (0x20, 0x2B, 0x2D):  # space, unary + and -
            return (OPERAND, depth, ops, b"", calls)
        if b == 0x28 and depth < MAX_DEPTH:  # (
            return (OPERAND, depth + 1, ops, b"", calls)
        if b in DIGITS:
            return (INT, depth, ops, b"", calls)
        if b == 0x2E:
            return (DOT, depth, ops, b"", calls)
        name = bytes((b,))
        return (NAME, depth, ops, name, calls) if _names(name, depth) else None
    if phase in (INT, FRAC) and b in DIGITS:
        return state
    if phase == INT and b == 0x2E:
        return (DOT, depth, ops, b"", calls)
    if phase == DOT:
        return (FRAC, depth, ops, b"", calls) if b in DIGITS else None
    if phase == NAME:
        longer = prefix + bytes((b,))
        if _names(longer, depth):
            return (NAME, depth, ops, longer, calls)
        word = prefix.decode()
        if word in ARITH_FUNCTIONS and b == 0x28 and depth < MAX_DEPTH:  # a call counts as an operation
            return (OPERAND, depth + 1, 1, b"", calls | 1 << depth)
        if word not in ARITH_CONSTANTS:
            return None
    if phase in (INT, FRAC, NAME):
        return arith_step((AFTER, depth, ops, b"", calls), b, numbers)
    # AFTER an operand
    if b == 0x20:
        return state
    if b in b"+-*/%^":
        return (OP_STAR if b == 0x2A else OP_SLASH if b == 0x2F else OPERAND, depth, 1, b"", calls)
    if b == 0x29 and depth > 0:
        return (AFTER, depth - 1, ops, b"", calls & ~(1 << (depth - 1)))
    if b == 0x2C and depth > 0 and calls >> (depth - 1) & 1:
        return (OPERAND, depth, ops, b"", calls)
    if b == 0x22 and depth == 0 and ops:
        return END
    return None


def _names(prefix: bytes, depth: int) -> list[str]:
    """Names that start with `prefix` and can still be finished (a function needs room for its parenthesis)."""
    return [
        n
        for n in ARITH_NAMES
        if n.encode().startswith(prefix) and (n in ARITH_CONSTANTS or depth < MAX_DEPTH)
    ]


def arith_cost(state: ArithState, numbers: tuple[bytes, ...] | None = None) -> int:
    """Bytes that finish the expression and its string: the operand under way, an operation if none yet
    (an operator and an operand), the closing parentheses and the quote."""
    phase, depth, ops, prefix, _ = state
    shortest = min(map(len, numbers)) if numbers else 1
    need_op = 0 if ops else 1 + shortest
    if phase == LISTED:
        return min(len(n) - len(prefix) for n in numbers or () if n.startswith(prefix)) + need_op + depth + 1
    if phase == NAME:  # finish a name: a function adds `(number)` and counts as the operation
        rest = min(
            len(n) - len(prefix) + (2 + shortest if n in ARITH_FUNCTIONS else need_op)
            for n in _names(prefix, depth)
        )
        return rest + depth + 1
    operand = shortest if phase in (OPERAND, OP_STAR, OP_SLASH) else 1 if phase == DOT else 0
    return operand + need_op + depth + 1


class SchemaCompiler:
    """JSON schema -> grammar nodes of an Automaton."""

    def __init__(self, auto: Automaton, root: Mapping[str, Any] | bool):
        self.auto, self.root = auto, root

    def compile(self, schema: Mapping[str, Any] | bool) -> int:
        auto = self.auto
        if schema is True or schema == {} or not isinstance(schema, Mapping):
            return auto.any_json() if schema is not False else auto.add(Node(ANY))
        if "$ref" in schema:
            return self._ref(schema["$ref"])
        if schema.get("nullable"):
            rest = {k: v for k, v in schema.items() if k != "nullable"}
            return auto.any_of(self.compile(rest), auto.lit("null"))
        if "const" in schema:
            return self._constant(schema["const"])
        if "enum" in schema:
            values = list(schema["enum"])
            if values and all(isinstance(v, str) for v in values):
                return auto.add(Node(STR, enum=tuple(escaped(v) for v in values)))
            return auto.any_of(*(self._constant(v) for v in values))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                base = {k: v for k, v in schema.items() if k not in (key, "description", "title")}
                return auto.any_of(*(self.compile({**base, **sub}) for sub in schema[key]))
        if "allOf" in schema:
            if len(schema["allOf"]) == 1:
                return self.compile(
                    {**{k: v for k, v in schema.items() if k != "allOf"}, **schema["allOf"][0]}
                )
            self.auto.unsupported.append("allOf with several schemas (decoded as any JSON value)")
            return auto.any_json()
        return self._typed(schema)

    def _typed(self, schema: Mapping[str, Any]) -> int:
        auto = self.auto
        kind = schema.get("type")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if isinstance(kind, list):
            return auto.any_of(*(self._typed({**schema, "type": k}) for k in kind))
        if kind is None:
            return auto.any_json()
        if kind == "object":
            return self._object(schema)
        if kind == "array":
            items = schema.get("items", True)
            item = self.compile(items if isinstance(items, Mapping | bool) else True)
            return auto.add(Node(ARR, item=item, min_items=int(schema.get("minItems", 0)),
                                 max_items=schema.get("maxItems")))  # fmt: skip
        if kind == "string":
            if schema.get("format") == "arithmetic":
                return auto.add(Node(STR, arithmetic=True, numbers=auto.arithmetic_numbers))
            return auto.add(Node(STR, min_len=int(schema.get("minLength", auto.min_string_length))))
        if kind in ("integer", "number"):
            return auto.add(Node(NUM, integer=kind == "integer"))
        if kind == "boolean":
            return auto.any_of(auto.lit("true"), auto.lit("false"))
        if kind == "null":
            return auto.lit("null")
        raise ConfigError(f"unknown JSON schema type {kind!r}; use one of object, array, string, number, "
                          "integer, boolean, null")  # fmt: skip

    def _object(self, schema: Mapping[str, Any]) -> int:
        auto = self.auto
        extra = schema.get("additionalProperties", True)
        if "properties" not in schema:
            if extra is False:
                return auto.lit("{}")
            return auto.add(Node(OBJ, extra=self.compile(extra if isinstance(extra, Mapping) else True)))
        required = set(schema.get("required", ()))
        slot = auto.add(Node(OBJ))  # reserved first so recursive $refs can point at it
        props = tuple(
            (escaped(key), self.compile(sub), key in required) for key, sub in schema["properties"].items()
        )
        auto.nodes[slot] = Node(OBJ, props=props)
        return slot

    def _constant(self, value: Any) -> int:
        if isinstance(value, str):
            return self.auto.add(Node(STR, enum=(escaped(value),)))
        return self.auto.lit(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def _ref(self, ref: str) -> int:
        auto = self.auto
        if ref in auto._refs:
            return auto._refs[ref]
        if not ref.startswith("#/") or not isinstance(self.root, Mapping):
            raise ConfigError(f"$ref {ref!r}: only local references such as '#/$defs/Name' are supported")
        target: Any = self.root
        for part in ref[2:].split("/"):
            if not isinstance(target, Mapping) or part not in target:
                raise ConfigError(f"$ref {ref!r} points at nothing in the schema")
            target = target[part]
        slot = auto._refs[ref] = auto.add(Node(ANY))  # placeholder: recursion resolves to this slot
        auto.nodes[slot] = Node(ANY, parts=(self.compile(target),))
        return slot
