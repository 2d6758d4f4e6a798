"""Argument policies for constrained calls: copy values from the conversation, leave unstated options out.

A small model picks the right tool and writes well-formed arguments under the grammar, but the values it
invents are often wrong (a city it has seen in an example, a number off by a digit). Both policies here
rewrite a tool's parameter schema before the grammar is built, so they cost nothing while decoding and every
call still validates against the tool's own schema (the rewritten schema only narrows it):

    copy_schema:  strings (no enum, no format) -> {"enum": the spans of the conversation's words}
                  integers and numbers          -> {"enum": the numbers the conversation writes (and the default)}
                  (arrays' items and nested objects' properties alike; unchanged when nothing fits the type)
    stated_schema: optional parameters whose value the message states become required; optional enums and
                  booleans it does not state are left out; the required ones come first, in schema order.

A span is one to MAX_SPAN_WORDS consecutive words of a user message or a tool result, cut at word
boundaries with the punctuation around it removed ("Read config.yaml for me." -> "config.yaml", "Read
config.yaml", ...): the model chooses which span, the grammar (an enum, a trie of bytes in the automaton)
lets it write nothing else. Numbers are the digits the text writes ("1,000" -> 1000) and the number words
one to twelve. This is the extractive idea of llmlab/rag's answer mode applied to call arguments.
Tests: tests/agents/test_arguments.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_SPAN_WORDS = 8
MAX_SPANS = 2000  # a very long conversation: its most recent spans
OPTIONAL_POLICIES = ("stated", "model")
EDGE = "\"'`.,;:!?()[]{}<>*"
WORD = re.compile(r"\S+")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]\d)")
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12,
}  # fmt: skip


def conversation_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The texts values may be copied from: the user's messages and the tool results, in order."""
    return [
        str(m["content"])
        for m in messages
        if m.get("role") in ("user", "tool") and isinstance(m.get("content"), str)
    ]


def words(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word of `text`, the punctuation around it left out; words of only punctuation
    are dropped."""
    out = []
    for m in WORD.finditer(text):
        start, end = m.start(), m.end()
        while start < end and text[start] in EDGE:
            start += 1
        while end > start and text[end - 1] in EDGE:
            end -= 1
        if start < end:
            out.append((start, end))
    return out


def spans(texts: Iterable[str], max_words: int = MAX_SPAN_WORDS) -> list[str]:
    """Every run of 1 to `max_words` consecutive words of each text, as the text writes it (order: by
    position, shorter first; duplicates dropped)."""
    found: dict[str, None] = {}
    for text in texts:
        bounds = words(text)
        for i in range(len(bounds)):
            for j in range(i, min(i + max_words, len(bounds))):
                span = text[bounds[i][0] : bounds[j][1]]
                if "\n" not in span:
                    found[span] = None
    return list(found)[-MAX_SPANS:]


def longer_spans(value: Any, candidates: Sequence[Any]) -> list[str]:
    """`value` and the candidates that continue it with more words ("Buenos" -> "Buenos Aires"), for a
    copied string value; [] when none does."""
    if not isinstance(value, str):
        return []
    longer = [c for c in candidates if isinstance(c, str) and c.startswith(value + " ")]
    return [value, *longer] if longer else []


def numbers(texts: Iterable[str]) -> list[int | float]:
    """The numbers the texts write, in digits ("1,000" and "3.5" too) or as words one to twelve."""
    found: dict[int | float, None] = {}
    for text in texts:
        plain = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
        for m in NUMBER.finditer(plain):
            value = float(m.group(0))
            found[int(value) if value.is_integer() and "." not in m.group(0) else value] = None
        for w in re.findall(r"[A-Za-z]+", text):
            if w.lower() in NUMBER_WORDS:
                found[NUMBER_WORDS[w.lower()]] = None
    return list(found)


def copy_schema(
    schema: Mapping[str, Any], span_list: Sequence[str], number_list: Sequence[int | float]
) -> dict[str, Any]:
    """`schema` with its free strings and its numbers narrowed to the given spans and numbers (see the
    module docstring); a part whose type nothing fits is left as it is."""
    out = dict(schema)
    if any(k in schema for k in ("enum", "const", "$ref", "anyOf", "oneOf", "allOf")):
        return out
    kind = schema.get("type")
    if kind == "string" and "format" not in schema and "pattern" not in schema:
        fitting = [s for s in span_list if len(s) >= int(schema.get("minLength", 1))]
        if "maxLength" in schema:
            fitting = [s for s in fitting if len(s) <= int(schema["maxLength"])]
        if fitting:
            out["enum"] = fitting
    elif kind in ("integer", "number"):
        candidates: list[int | float] = list(number_list)
        default = schema.get("default")
        if isinstance(default, int | float) and not isinstance(default, bool) and default not in candidates:
            candidates.append(default)
        if kind == "integer":
            candidates = [int(n) for n in candidates if float(n).is_integer() and not isinstance(n, bool)]
        lo, hi = schema.get("minimum"), schema.get("maximum")
        candidates = [n for n in candidates if (lo is None or n >= lo) and (hi is None or n <= hi)]
        if candidates:
            out["enum"] = candidates
    elif kind == "array" and isinstance(schema.get("items"), Mapping):
        out["items"] = copy_schema(schema["items"], span_list, number_list)
    elif kind == "object" and isinstance(schema.get("properties"), Mapping):
        out["properties"] = {
            k: copy_schema(v, span_list, number_list) if isinstance(v, Mapping) else v
            for k, v in schema["properties"].items()
        }
    return out


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[\W_]+", spaced) if len(w) >= 3]


def _mentions(text: str, word: str) -> bool:
    """`word` (or its plural or singular) appears in `text` as a whole word, case-insensitively."""
    stem = word[:-1] if word.endswith("s") and len(word) > 3 else word
    return re.search(rf"\b{re.escape(stem)}(?:s|es)?\b", text, re.I) is not None


def stated(name: str, schema: Mapping[str, Any], text: str) -> bool:
    """Whether `text` states a value for the parameter: one of its enum values appears in it, or a word of
    the parameter's name does ("unit" in "in which unit?", "limit" in "limit it to 5")."""
    values = [v for v in schema.get("enum", ()) if isinstance(v, str) and len(v) >= 2]
    if any(_mentions(text, v) for v in values):
        return True
    return any(_mentions(text, w) for w in _name_words(name))


def stated_schema(parameters: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The parameters as the "stated" policy narrows them: the required ones first (schema order), then the
    optional ones `text` states, now required (the message gives their value: the call must carry it),
    then the other optional ones without an enum, left to the model; optional enums and booleans the text
    does not state are left out (their default stands)."""
    props = parameters.get("properties")
    if not isinstance(props, Mapping):
        return dict(parameters)
    required = [k for k in props if k in set(parameters.get("required", ()))]
    said, open_ = [], []
    for k, sub in props.items():
        if k in required or not isinstance(sub, Mapping):
            continue
        if stated(k, sub, text):
            said.append(k)
        elif "enum" not in sub and sub.get("type") != "boolean":
            open_.append(k)
    order = [*required, *said, *open_]
    return {**parameters, "properties": {k: props[k] for k in order}, "required": [*required, *said]}
