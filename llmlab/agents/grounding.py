"""Grounded answers: the reply after tool results must carry the results' values verbatim.

    observations = the tool results the reply answers (the conversation's trailing `tool` messages; errors
                   and refusals left out)
    values(obs)  = JSON: its scalar leaves; text: its words that hold a digit ("7006652", "90.00",
                   "2026-12-06"), or the whole text when it has none and is short; nothing for long text or
                   more than MAX_VALUES numbers (a document, a listing: not one result to quote)
    answer       = the model's text when it holds every value (case-insensitive), else by style:
                   template  the results themselves ("7006652")
                   splice    the model's text cut before its first number that no result or user message
                             holds, then the missing values ("1234 times 5678 is 7006652."); the template
                             when it wrote no such number

A 135M model reads "7006652" from the calculator and writes "1234 times 5678 is 12345678": it copies the
request's numbers and invents the result. The check and both repairs are string operations on its reply, so
they cost no model pass. Measured on the project's train tasks (docs/agents.md): see ANSWER_STYLES.
Tests: tests/agents/test_grounding.py (values, styles, a scripted model through Agent and ToolCaller),
tests/agents/test_agents_slow.py (SmolLM2: the two-step task's answer holds the calculator's number).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

ANSWER_STYLES = ("auto", "free", "template", "splice")
AUTO_STYLE = "template"
"""What auto means for a model under 1B parameters (caller.COPY_BELOW); larger models answer freely."""
MAX_VALUES = 4
MAX_TEXT = 120
"""A result without numbers is quoted whole only up to this many characters."""
REPEATED = "(same call as step {index}) "
"""How the agent loop marks the result of a call it already made (loop.py); grounding reads past it."""
ERROR = "error:"
"""How the agent loop starts an observation of a call that was not run or failed (loop.py); no values to hold."""
WORD = re.compile(r"\S+")
EDGE = "\"'()[]{}<>,;:.!?"


def observations(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The results a reply to `messages` answers: the trailing `tool` messages, in order, without errors
    (a repeated call's result counts, without its "(same call as step N)" note)."""
    found: list[str] = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        text = m.get("content")
        if isinstance(text, str):
            found.append(text)
    out = []
    for text in reversed(found):
        if text.startswith(REPEATED.split("{")[0]):
            text = text.split(") ", 1)[1] if ") " in text else ""
        if text.strip() and not text.startswith(ERROR):
            out.append(text.strip())
    return out


def values(observation: str) -> list[str]:
    """The values an answer quoting `observation` must hold (see the module docstring)."""
    try:
        data = json.loads(observation)
    except ValueError:
        data = None
    if isinstance(data, dict | list):
        leaves = [json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v for v in _leaves(data)]
        leaves = [v for v in leaves if v.strip() and v != "null"]
        return leaves if len(leaves) <= MAX_VALUES else []
    numbers = [w.strip(EDGE) for w in WORD.findall(observation) if any(c.isdigit() for c in w)]
    numbers = [n for n in numbers if n]
    if numbers:
        return numbers if len(numbers) <= MAX_VALUES and len(observation) <= 4 * MAX_TEXT else []
    text = observation.strip()
    return [text] if len(text) <= MAX_TEXT and "\n" not in text else []


def _leaves(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [x for v in data.values() for x in _leaves(v)]
    if isinstance(data, list):
        return [x for v in data for x in _leaves(v)]
    return [data]


def missing(answer: str, results: Sequence[str]) -> list[str]:
    """The values of `results` that `answer` does not hold: case-insensitive, and whole (15 is not in 150
    or 1.5)."""
    return [v for r in results for v in values(r) if not _holds(answer, v)]


def _holds(answer: str, value: str) -> bool:
    return re.search(r"(?<![\w.])" + re.escape(value) + r"(?!\w|[.,]\d)", answer, re.I) is not None


def holds_results(answer: str, results: Sequence[str]) -> bool:
    """True when the answer holds every value of the results (vacuously true without values)."""
    return not missing(answer, results)


def ground(answer: str, results: Sequence[str], style: str, said: Sequence[str] = ()) -> str:
    """`answer` when it holds every value of `results`, else repaired by `style` (template or splice;
    free returns it unchanged). `said`: the user's messages, whose numbers the model may repeat."""
    lost = missing(answer, results)
    if style == "free" or not lost:
        return answer
    template = "\n".join(r for r in results if values(r))
    if style == "template":
        return template
    known = {v.lower() for r in results for v in values(r)}
    known |= {w.strip(EDGE).lower() for s in said for w in WORD.findall(s)}
    for word in WORD.finditer(answer):
        token = word.group(0).strip(EDGE)
        if any(c.isdigit() for c in token) and token.lower() not in known:
            head = answer[: word.start()].rstrip()
            return f"{head} {' '.join(lost)}." if head else template
    return template


def answer_for(
    text: str, messages: Sequence[Mapping[str, Any]], results: Sequence[str] | None, style: str
) -> str:
    """The answer for a text reply to `messages`: `text` grounded (by `style`) in `results`, or by default in
    the results the reply answers (observations)."""
    found = observations(messages) if results is None else list(results)
    said = [m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
    return ground(text, found, style, said)
