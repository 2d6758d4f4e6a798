"""`calculator`: arithmetic through an AST allow-list, never `eval`.

    + - * / // % ** (also written ^), unary minus, parentheses, numbers, pi, e, tau, and
    sqrt, log, log10, log2, exp, sin, cos, tan, asin, acos, atan, abs, round, floor, ceil, min, max

Everything else (names, attributes, subscripts, calls of anything not listed, strings, comprehensions,
lambdas) is refused before anything runs. Time and memory stay bounded: the expression is at most 300
characters, a power is computed only when its result has at most 4,096 bits (so `9**9**9` is refused
without being computed), and every intermediate integer stays below 2**4096 (a float overflow is refused).
Its `expression` is declared with `"format": "arithmetic"`, so constrained decoding lets a model write only
arithmetic there (schema_grammar.py). Tests: tests/agents/test_builtin_calculator.py (results, and `__import__('os')`, attribute access,
`9**9**9`, huge factors, deep nesting all refused in bounded time).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any

from llmlab.agents.tools import ToolExample, tool

MAX_LENGTH = 300
MAX_POWER_BITS = 4096
MAX_INT = 2**MAX_POWER_BITS

Number = int | float


class CalculatorError(ValueError):
    """The expression is not allowed or cannot be computed; the message says why."""


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        bits = exponent * math.log2(abs(base)) if abs(base) > 1 else 0
        if bits > MAX_POWER_BITS:
            raise CalculatorError(f"{base} ** {exponent} is too large to compute (about {bits:,.0f} bits)")
    elif abs(exponent) > 10_000 and abs(base) not in (0, 1):
        raise CalculatorError(f"the exponent {exponent} is too large")
    result = operator.pow(base, exponent)
    if isinstance(result, complex):
        raise CalculatorError(f"{base} ** {exponent} is not a real number")
    return result


BINARY: dict[type, Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
    ast.BitXor: _power,  # people (and small models) write 2^10 for a power
}
UNARY: dict[type, Callable[[Any], Number]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
}
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
SYMBOLS = {"×": "*", "÷": "/", "−": "-"}
LEADING_ZEROS = re.compile(r"(?<![\d.\w])0+(?=\d)")


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; raises CalculatorError with the reason when it is refused."""
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(
            f"the expression is {len(expression)} characters long; the limit is {MAX_LENGTH}"
        )
    for symbol, ascii_op in SYMBOLS.items():
        expression = expression.replace(symbol, ascii_op)
    expression = LEADING_ZEROS.sub("", expression)  # 007 is 7 (Python refuses leading zeros)
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as e:
        raise CalculatorError(
            f"not an arithmetic expression: {expression!r} ({e.msg if isinstance(e, SyntaxError) else e})"
        ) from None
    except RecursionError:
        raise CalculatorError("the expression is nested too deeply") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("the result is too large") from None
    except RecursionError:
        raise CalculatorError("the expression is nested too deeply") from None
    except (ValueError, TypeError) as e:
        if isinstance(e, CalculatorError):
            raise
        raise CalculatorError(f"cannot compute {expression!r}: {e}") from None


def _eval(node: ast.AST) -> Number:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return _bounded(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        return _bounded(BINARY[type(node.op)](_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        if node.keywords or not 1 <= len(node.args) <= 8:
            raise CalculatorError(f"{node.func.id}() takes 1 to 8 arguments, without names")
        return _bounded(FUNCTIONS[node.func.id](*(_eval(a) for a in node.args)))
    raise CalculatorError(
        f"{_describe(node)} is not allowed; use numbers, + - * / // % ** and math functions"
    )


def _bounded(value: Number) -> Number:
    if isinstance(value, int) and abs(value) >= MAX_INT:
        raise CalculatorError(f"an intermediate result is too large (over {MAX_POWER_BITS} bits)")
    if isinstance(value, float) and math.isinf(value):
        raise CalculatorError("the result is too large")
    return value


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    if isinstance(node, ast.Call):
        return f"calling {ast.unparse(node.func)}()"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return f"{type(node).__name__.lower()} syntax"


def format_number(value: Number) -> str:
    """Integers as they are; floats with up to 12 significant digits (an integral float loses its .0)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    return str(value)


@tool(
    name="calculator",
    timeout=5.0,
    examples=[ToolExample("What is 41 times 6?", {"expression": "41 * 6"}, "246", "41 times 6 is 246.")],
)
def calculator(expression: Annotated[str, {"format": "arithmetic"}]) -> str:
    """Calculate a number: add, subtract, multiply or divide numbers, e.g. how many in total.

    Args:
        expression: the arithmetic to compute, e.g. "(12 + 7) * 3" or "sqrt(2) / 4".
    """
    return format_number(evaluate(expression))
