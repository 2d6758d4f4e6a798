"""The project's single-call tool tasks (bench/data/agents/tasks.jsonl), the tools they use, and their scoring.

Written for llmlab (not drawn from any public set), and the only tasks prompts and decoding were tuned on
(dev.jsonl: held-out tasks of the same kind, see DEV).
Each task names the tool that fits and checks on its arguments: `equals` (strings compared case-insensitively,
numbers exactly), `contains` (every word appears, case-insensitively) and `evaluates_to` (the calculator's
value of the expression, to 1e-6). Used by bench/agents.py and tests/agents/test_agents_slow.py.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any, Literal

from llmlab.agents import Tool, ToolExample, tool
from llmlab.agents.builtin import builtin_tools
from llmlab.agents.builtin.calculator import CalculatorError, evaluate

TASKS = Path(__file__).parent / "data" / "agents" / "tasks.jsonl"
DEV = Path(__file__).parent / "data" / "agents" / "dev.jsonl"
"""26 more tasks written for the project over the same tools, held out from tuning: used only to choose
between options that tie on TASKS (copy_arguments), never to tune prompts, grammars or selection."""
PARALLEL = Path(__file__).parent / "data" / "agents" / "parallel.jsonl"
"""32 requests written for the project that need one, two or three calls (10 one, 22 several) ("weather in Paris and in Rome"),
each with `split` train (16: the parallel rules were chosen on these) or dev (16: held out, measured only);
the split was fixed before anything was measured on them."""


@tool(
    examples=[
        ToolExample(
            "How warm is it in Lisbon?",
            {"city": "Lisbon"},
            "Sunny, 24 degrees celsius",
            "It is sunny and 24 °C in Lisbon.",
        )
    ]
)
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """The current weather in a city.

    Args:
        city: the city, e.g. "Lisbon".
        unit: the temperature unit.
    """
    return f"Sunny, 21 degrees {unit} in {city}"


@tool(
    examples=[
        ToolExample(
            "Convert 20 pounds to dollars.",
            {"amount": 20, "source": "GBP", "target": "USD"},
            "20 GBP = 25.40 USD",
            "20 pounds are 25.40 dollars.",
        )
    ]
)
def convert_currency(amount: float, source: str, target: str) -> str:
    """Convert an amount of money from one currency to another.

    Args:
        amount: how much money.
        source: the currency of the amount, as an ISO code such as USD.
        target: the currency to convert to, as an ISO code such as EUR.
    """
    return f"{amount} {source} = {amount * 0.9:.2f} {target}"


@tool(
    examples=[
        ToolExample(
            "Wake me in 45 minutes.",
            {"minutes": 45, "label": "wake up"},
            "timer set for 45 minutes",
            "Your timer rings in 45 minutes.",
        )
    ]
)
def set_timer(minutes: int, label: str = "") -> str:
    """Start a countdown timer.

    Args:
        minutes: how many minutes until it rings.
        label: what the timer is for.
    """
    return f"timer set for {minutes} minutes"


def task_tools(store: Any = "unused", root: str | None = None) -> list[Tool]:
    """The nine tools the tasks choose from: the six built-in ones and three of the tasks' own."""
    root = root or tempfile.mkdtemp(prefix="llmlab-agent-tasks-")
    names = ["calculator", "now", "rag_search", "read_file", "list_dir", "http_get"]
    tools = builtin_tools(names, store=store, root=root, allow_hosts=["example.com"])
    return [*tools, get_weather, convert_currency, set_timer]


def load_tasks(path: Path = TASKS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _passes(value: Any, rule: dict[str, Any]) -> bool:
    if "equals" in rule:
        want = rule["equals"]
        if isinstance(want, str):
            return isinstance(value, str) and value.strip().lower() == want.lower()
        return isinstance(value, int | float) and not isinstance(value, bool) and value == want
    if "contains" in rule:
        return isinstance(value, str) and all(w.lower() in value.lower() for w in rule["contains"])
    if "evaluates_to" in rule:
        try:
            got = evaluate(str(value))
        except CalculatorError:
            return False
        return math.isclose(got, rule["evaluates_to"], rel_tol=1e-6)
    return True


def score_call(task: dict[str, Any], calls: list[Any]) -> dict[str, bool]:
    """{"valid": a call that parses and validates, "tool": it is the right tool, "correct": and its
    arguments pass the task's checks}."""
    valid = [c for c in calls if c.error is None]
    first = valid[0] if valid else None
    right = first is not None and first.name == task["tool"]
    correct = right and all(_passes(first.arguments.get(k), rule) for k, rule in task["check"].items())
    return {"valid": first is not None, "tool": right, "correct": correct}


def load_parallel(split: str) -> list[dict[str, Any]]:
    """The parallel-call tasks of one split ("train" or "dev")."""
    return [t for t in load_tasks(PARALLEL) if t["split"] == split]


def score_calls(task: dict[str, Any], calls: list[Any]) -> dict[str, bool]:
    """{"valid": every call parses and validates, "count": as many calls as the task needs, "correct": and
    each needed call is matched by a different call of its tool whose arguments pass its checks (any order)}."""
    valid = [c for c in calls if c.error is None]
    wanted = task["calls"]
    count = len(valid) == len(calls) == len(wanted)
    left = list(valid)
    for want in wanted:
        match = next(
            (
                c
                for c in left
                if c.name == want["tool"]
                and all(_passes(c.arguments.get(k), rule) for k, rule in want["check"].items())
            ),
            None,
        )
        if match is None:
            return {"valid": bool(calls) and len(valid) == len(calls), "count": count, "correct": False}
        left.remove(match)
    return {"valid": bool(calls) and len(valid) == len(calls), "count": count, "correct": count}
