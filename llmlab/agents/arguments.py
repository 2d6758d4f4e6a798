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
SPACED_MINUS = re.compile(r"(?:^|(?<=\s))-\s(\d+(?:\.\d+)?)(?![\w.]\d)")  # "5x - 3": -3 as well as 3
UNIT_AFTER = re.compile(r"\s?([A-Za-z]{2,})\b")  # the word after a number: "82 kg", "10 years"
JOINED = re.compile(r"\s*(?:,|,?\s*(?:and|or|to))\s*", re.I)  # "5 and 12 minutes", "2, 3 or 4 days"
FUNCTION_WORDS = frozenset(  # never a copied list item, nor a unit after a number
    ["a", "an", "and", "or", "the", "of", "to", "in", "on", "at", "for", "with", "by", "from", "as", "is",
     "are", "then"]
)  # fmt: skip
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
            found[_number(m.group(0))] = None
        for m in SPACED_MINUS.finditer(plain):
            found[-_number(m.group(1))] = None
        for w in re.findall(r"[A-Za-z]+", text):
            if w.lower() in NUMBER_WORDS:
                found[NUMBER_WORDS[w.lower()]] = None
    return list(found)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def unit_numbers(texts: Iterable[str]) -> list[tuple[int | float, str]]:
    """(number, the word written right after it, lower case) for each number followed by a word of two
    letters or more ("82 kg" -> (82, "kg"), "10 years" -> (10, "years")); a number joined to the next one by
    "and", "or", "to" or a comma takes that one's word ("5 and 12 minutes" -> (5, "minutes"), (12, ...))."""
    found = []
    for text in texts:
        plain = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
        found_numbers = list(NUMBER.finditer(plain))
        units: list[str | None] = []
        for m in found_numbers:
            after = UNIT_AFTER.match(plain, m.end())
            word = after.group(1).lower() if after else None
            units.append(word if word not in FUNCTION_WORDS else None)
        for i in reversed(range(len(found_numbers) - 1)):
            between = plain[found_numbers[i].end() : found_numbers[i + 1].start()]
            if units[i] is None and JOINED.fullmatch(between):
                units[i] = units[i + 1]
        found += [(_number(m.group(0)), u) for m, u in zip(found_numbers, units, strict=True) if u]
    return found


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _parts(name: str) -> list[str]:
    """The words of a parameter name, lower case and singular ("compounds_per_year" -> compound, per, year)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()
    return [_singular(w) for w in re.split(r"[\W_]+", spaced) if w]


def _unit_fits(word: str, name: str) -> bool:
    """Whether a unit word written after a number names the parameter `name` ("kg" for weight_kg, "years"
    for years, "volts" for voltage): it equals a word of the name, singular or plural, or one starts the
    other (three letters or more)."""
    word = _singular(word)
    for part in _parts(name):
        if len(part) >= 2 and (part == word or (min(len(part), len(word)) >= 3 and part.startswith(word))):
            return True
    return False


def unit_schema(parameters: Mapping[str, Any], tagged: Sequence[tuple[int | float, str]]) -> dict[str, Any]:
    """The (already copied) parameters with each numeric one narrowed by the unit words of the request: a
    parameter a unit word names gets only the numbers written before such a word ("82 kg" for weight_kg);
    another numeric parameter loses the numbers that belong to a parameter so named ("10 years" is not the
    principal), as long as some candidate is left."""
    props = parameters.get("properties")
    if not isinstance(props, Mapping) or not tagged:
        return dict(parameters)

    def numeric(sub: Any) -> bool:
        return isinstance(sub, Mapping) and sub.get("type") in ("integer", "number") and "enum" in sub

    names = [k for k, sub in props.items() if numeric(sub)]
    owned: dict[str, list[int | float]] = {k: [] for k in names}
    for n, w in tagged:  # a unit word that fits several names goes to the shortest ("years", not "per_year")
        fits = [k for k in names if _unit_fits(w, k)]
        for k in fits:
            if len(_parts(k)) == min(len(_parts(f)) for f in fits):
                owned[k].append(n)
    claimed = {n for found in owned.values() for n in found}
    out = dict(props)
    for key, found in owned.items():
        enum = list(props[key]["enum"])
        keep = [n for n in enum if n in found] if found else [n for n in enum if n not in claimed]
        if keep:
            out[key] = {**props[key], "enum": keep}
    return {**parameters, "properties": out}


def distinct_items(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """`arguments` with each list of strings cleaned as a list of copied values should be: each value once,
    without a value that overlaps an earlier one ("Hotel California and Africa" after "Hotel California"),
    another parameter's value, or a lone function word ("and")."""
    out = dict(arguments)
    for key, value in arguments.items():
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            continue
        others = {str(v).lower() for k, v in arguments.items() if k != key and isinstance(v, str)}
        kept: list[str] = []
        for item in value:
            low = item.lower()
            if (
                low in FUNCTION_WORDS
                or low in others
                or any(low in k.lower() or k.lower() in low for k in kept)
            ):
                continue
            kept.append(item)
        out[key] = kept or value
    return out


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
        else:  # a number is written as one (2.0): a float parameter, or a list of floats, holds floats
            candidates = list(dict.fromkeys(float(n) for n in candidates))
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
    """`word` (or its plural or singular, or for a word of 4 letters or more its adverb: "moderately" for
    "moderate") appears in `text` as a whole word, case-insensitively; an underscore or hyphen in `word`
    matches a space, underscore or hyphen ("very_active" in "very active")."""
    stem = _singular(word)
    joined = r"[\s_-]+".join(re.escape(part) for part in re.split(r"[\s_-]+", stem))
    ends = "s|es|ly" if len(stem) >= 4 else "s|es"
    return re.search(rf"\b{joined}(?:{ends})?\b", text, re.I) is not None


def stated(name: str, schema: Mapping[str, Any], text: str, others: Iterable[str] = ()) -> bool:
    """Whether `text` states a value for the parameter: one of its enum values appears in it, or a word of
    the parameter's name does ("unit" in "in which unit?", "limit" in "limit it to 5"), unless that word is
    the whole name of another parameter (`others`: "years" states years, not compounds_per_year)."""
    values = [v for v in schema.get("enum", ()) if isinstance(v, str) and len(v) >= 2]
    if any(_mentions(text, v) for v in values):
        return True
    taken = {_singular(o.lower()) for o in others}
    return any(_mentions(text, w) for w in _name_words(name) if _singular(w) not in taken)


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
        if stated(k, sub, text, [o for o in props if o != k]):
            said.append(k)
        elif "enum" not in sub and sub.get("type") != "boolean":
            open_.append(k)
    order = [*required, *said, *open_]
    narrowed = {k: _stated_values(props[k], text) for k in order}
    return {**parameters, "properties": narrowed, "required": [*required, *said]}


def _stated_values(schema: Any, text: str) -> Any:
    """An enum narrowed to the values `text` states ("in miles" leaves "miles" of km, miles), when it
    states any."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("enum"), list):
        return schema
    said = [v for v in schema["enum"] if isinstance(v, str) and len(v) >= 2 and _mentions(text, v)]
    return {**schema, "enum": said} if said else schema
