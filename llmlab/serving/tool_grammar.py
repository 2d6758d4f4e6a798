"""The server's built-in tool-call constraint: token masks that make a call valid JSON for one tool's schema.

Used until `llmlab.agents` (its JSON-schema automaton, issue 12) is installed, which then takes over
(tools.py picks). Scope: the hermes format (`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`),
one call per reply, flat parameter objects whose properties are strings, integers, numbers, booleans or
enums; every property is written, in schema order. Other schemas are refused with a 400 naming the property.

Each tool's call is a flat sequence of elements: literals (`{"name": "get_weather", "arguments": {"city": "`),
string contents, numbers and enum choices. A batch row's state is the set of tools its text still matches and,
for each, its position in the sequence. A token is allowed when all of its characters can be fed through
one live sequence:

    literal   the token whose text is the longest prefix of what the literal still needs (looked up, not
              scanned: one dict lookup per prefix length), so a literal costs a known number of tokens
    string    any token without a quote, backslash or control character (one precomputed mask), or once the
              string is non-empty, a token that closes it with a prefix of the literal after it
    number    digit tokens that keep `-?(0|[1-9][0-9]*)(\\.[0-9]+)?` a valid prefix, then the closing literal
    end       only the end-of-sequence tokens

Values are capped (MAX_STRING and MAX_NUMBER tokens) and, when the row's token budget runs short, only
the tokens that close the current value are left, so a call always ends within max_tokens.
Same idea as outlines (Willard & Louf, 2023, arXiv:2307.09702) on a much smaller grammar.
Tests: tests/serving/test_serve_tool_grammar.py (every sampled call from a random model parses and validates).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llmlab.errors import ConfigError

TRIGGER = "<tool_call>"
MAX_STRING = 48
MAX_NUMBER = 12
_INT_PREFIX = re.compile(r"-?(0|[1-9][0-9]*)?")
_INT_DONE = re.compile(r"-?(0|[1-9][0-9]*)")
_NUM_PREFIX = re.compile(r"-?((0|[1-9][0-9]*)(\.[0-9]*)?)?")
_NUM_DONE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


@dataclass(frozen=True)
class Element:
    kind: str  # "lit", "str", "int", "num", "enum", "end"
    text: str = ""
    options: tuple[str, ...] = ()


def _value(name: str, schema: Mapping[str, Any], tool: str) -> Element:
    if "enum" in schema:
        return Element("enum", options=tuple(json.dumps(v) for v in schema["enum"]))
    kind = schema.get("type")
    if kind == "boolean":
        return Element("enum", options=("true", "false"))
    if kind in ("string", "integer", "number"):
        return Element({"string": "str", "integer": "int", "number": "num"}[kind])
    raise ConfigError(
        f"tool {tool!r}: parameter {name!r} of type {kind!r} is not supported by the server's built-in tool-call "
        "constraint (strings, integers, numbers, booleans and enums are); install llmlab's agents module for "
        "full JSON Schema"
    )


def call_sequence(tool: Mapping[str, Any], start: str) -> list[Element]:
    """One tool's call as elements, starting with `start` (the text before the call object)."""
    fn = tool["function"]
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    if params.get("type", "object") != "object" or not isinstance(props, dict):
        raise ConfigError(f"tool {fn['name']!r}: parameters must be an object schema with properties")
    parts: list[Element] = []
    text = start + '{"name": ' + json.dumps(fn["name"]) + ', "arguments": {'
    for i, (name, schema) in enumerate(props.items()):
        value = _value(name, schema if isinstance(schema, dict) else {}, fn["name"])
        text += (", " if i else "") + json.dumps(name) + ": " + ('"' if value.kind == "str" else "")
        parts += [Element("lit", text), value]
        text = '"' if value.kind == "str" else ""
    parts += [Element("lit", text + "}}\n</tool_call>"), Element("end")]
    return parts


class Vocab:
    """Token texts and the masks every constraint over one tokenizer shares (built once per tokenizer)."""

    def __init__(self, tokenizer: Any, width: int):
        self.width = width
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        special |= {int(i) for i, t in added.items() if getattr(t, "special", True)}
        n = min(len(tokenizer), width)
        self.texts = [
            "" if i in special else tokenizer.decode([i], clean_up_tokenization_spaces=False)
            for i in range(n)
        ]
        self.by_text: dict[str, list[int]] = {}
        plain = torch.zeros(width, dtype=torch.bool)
        for i, text in enumerate(self.texts):
            if not text:
                continue
            self.by_text.setdefault(text, []).append(i)
            if not any(c in '"\\' or ord(c) < 32 for c in text):
                plain[i] = True
        self.plain = plain
        self.numeric = [i for i, t in enumerate(self.texts) if t and all(c in "0123456789-." for c in t)]

    def longest(self, text: str) -> int:
        """The token whose text is the longest prefix of `text` (literals are written this way: the
        canonical split in nearly every case, and a known cost)."""
        for k in range(len(text), 0, -1):
            found = self.by_text.get(text[:k])
            if found:
                return found[0]
        raise ConfigError(f"no token starts the text {text[:20]!r}; this tokenizer cannot write tool calls")

    def split(self, text: str) -> int:
        """Tokens `longest` takes to write `text`."""
        count = 0
        while text:
            text = text[len(self.texts[self.longest(text)]) :]
            count += 1
        return count

    def prefixes(self, text: str) -> list[int]:
        """Tokens whose text is a non-empty prefix of `text`."""
        out: list[int] = []
        for k in range(1, len(text) + 1):
            out += self.by_text.get(text[:k], ())
        return out


_VOCABS: dict[tuple[int, int], Vocab] = {}


def vocab_for(tokenizer: Any, width: int) -> Vocab:
    key = (id(tokenizer), width)
    if key not in _VOCABS:
        _VOCABS[key] = Vocab(tokenizer, width)
    return _VOCABS[key]


# A position in one tool's sequence: (tool index, element index, text consumed inside that element, tokens spent
# inside it). None is a dead position.
Pos = tuple[int, int, str, int]


class ToolCallConstraint:
    """The engine's `allowed_tokens(row, generated_ids)` hook for tool calls (hermes format, one call).

    Args:
        mode: "required" (the reply is one call) or "auto" (free text; a call once the text says <tool_call>).
        max_tokens: the row's budget, so that a call always closes in time.
    """

    def __init__(
        self,
        tokenizer: Any,
        tools: Sequence[Mapping[str, Any]],
        mode: str,
        eos_ids: Sequence[int],
        width: int,
        max_tokens: int,
    ):
        self.vocab = vocab_for(tokenizer, width)
        self.mode, self.max_tokens = mode, max_tokens
        self.eos = sorted(eos_ids)
        start = TRIGGER + "\n" if mode == "required" else "\n"
        self.sequences = [call_sequence(t, start) for t in tools]
        self._counts: dict[str, int] = {}
        self._rows: dict[int, tuple[int, str, list[Pos] | None]] = {}
        need = max(self.min_tokens((t, 0, "", 0)) for t in range(len(self.sequences)))
        if mode == "required" and max_tokens < need:
            raise ConfigError(
                f"max_tokens {max_tokens} is too few for a tool call; these tools need at least {need}"
            )

    def __call__(self, row: int, generated: Sequence[int]) -> torch.Tensor | None:
        done, free, live = self._rows.get(row, (0, "", self._start() if self.mode == "required" else None))
        for token in generated[done:]:
            text = self.vocab.texts[token] if token < len(self.vocab.texts) else ""
            if live is None:  # auto mode, free text so far
                free += text
                at = free.find(TRIGGER)
                if at >= 0:
                    live = self._feed(self._start(), free[at + len(TRIGGER) :])
            else:
                live = self._feed(live, text) if text else []
        self._rows[row] = (len(generated), free[-len(TRIGGER) :], live)
        if live is None or not live:
            return None  # free text, or a dead end (cannot happen under the mask): no constraint
        return self._mask(live, self.max_tokens - len(generated))

    def _start(self) -> list[Pos]:
        return [(t, 0, "", 0) for t in range(len(self.sequences))]

    # -- feeding characters -----------------------------------------------------------------------------

    def _feed(self, live: list[Pos], text: str) -> list[Pos]:
        out = []
        for pos in live:
            moved: Pos | None = pos
            for ch in text:
                assert moved is not None
                moved = self._char(moved, ch)
                if moved is None:
                    break
            if moved is not None:
                out.append((moved[0], moved[1], moved[2], moved[3] + 1))
        return out

    def _char(self, pos: Pos, ch: str) -> Pos | None:
        t, e, seen, spent = pos
        el = self.sequences[t][e]
        if el.kind == "lit":
            want = el.text[len(seen)]
            if ch != want:
                return None
            seen += ch
            return (t, e + 1, "", 0) if len(seen) == len(el.text) else (t, e, seen, spent)
        if el.kind == "end":
            return None
        if self._inside(el, seen + ch):
            return (t, e, seen + ch, spent)
        if self._complete(el, seen):
            return self._char((t, e + 1, "", 0), ch)
        return None

    @staticmethod
    def _inside(el: Element, text: str) -> bool:
        if el.kind == "str":
            ch = text[-1]
            return ch not in '"\\' and ord(ch) >= 32
        if el.kind == "int":
            return _INT_PREFIX.fullmatch(text) is not None
        if el.kind == "num":
            return _NUM_PREFIX.fullmatch(text) is not None
        return any(o.startswith(text) for o in el.options)

    @staticmethod
    def _complete(el: Element, text: str) -> bool:
        if el.kind == "str":
            return bool(text)
        if el.kind == "int":
            return _INT_DONE.fullmatch(text) is not None
        if el.kind == "num":
            return _NUM_DONE.fullmatch(text) is not None
        return text in el.options

    # -- masks ------------------------------------------------------------------------------------------

    def _count(self, text: str) -> int:
        if text not in self._counts:
            self._counts[text] = self.vocab.split(text)
        return self._counts[text]

    def min_tokens(self, pos: Pos) -> int:
        """Tokens still needed to finish from `pos`: literals as `longest` writes them, one or more per value."""
        t, e, seen, _ = pos
        need = 0
        for k, el in enumerate(self.sequences[t][e:]):
            if el.kind == "lit":
                need += self._count(el.text[len(seen) :] if k == 0 else el.text)
            elif el.kind == "end":
                need += 1
            elif k > 0 or not self._complete(el, seen):
                need += max(len(o) for o in el.options) if el.kind == "enum" else 1
        return need

    def _mask(self, live: list[Pos], remaining: int) -> torch.Tensor:
        mask = torch.zeros(self.vocab.width, dtype=torch.bool)
        candidates: set[int] = set()
        for pos in live:
            t, e, seen, spent = pos
            el = self.sequences[t][e]
            short = remaining <= self.min_tokens(pos)
            if el.kind == "end":
                candidates.update(self.eos)
                continue
            if el.kind == "lit":
                candidates.add(self.vocab.longest(el.text[len(seen) :]))
                continue
            closing = self._complete(el, seen)
            cap = MAX_STRING if el.kind == "str" else MAX_NUMBER
            if closing:
                candidates.add(self.vocab.longest(self.sequences[t][e + 1].text))
            if (short or spent >= cap) and closing:
                continue
            if el.kind == "str":
                mask |= self.vocab.plain
            elif el.kind == "enum":
                for option in el.options:
                    if option.startswith(seen):
                        candidates.update(self.vocab.prefixes(option[len(seen) :]))
            else:
                candidates.update(self.vocab.numeric)
        allowed = [c for c in candidates if c in self.eos or self._feed(live, self.vocab.texts[c])]
        if allowed:
            mask[torch.tensor(allowed, dtype=torch.long)] = True
        if not mask.any():  # cannot happen for a well-formed sequence; never leave a row with no token
            mask[self.eos] = True
        return mask


def parse_calls(text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(content outside the calls, the valid calls as {"name", "arguments": dict}) from hermes-format text."""
    known = {t["function"]["name"] for t in tools}
    calls = []
    pieces = re.split(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", text, flags=re.S)
    content = "".join(pieces[0::2]).strip()
    for raw in pieces[1::2]:
        try:
            call = json.loads(raw)
        except ValueError:
            continue
        if isinstance(call, dict) and call.get("name") in known and isinstance(call.get("arguments"), dict):
            calls.append({"name": call["name"], "arguments": call["arguments"]})
    return content, calls
