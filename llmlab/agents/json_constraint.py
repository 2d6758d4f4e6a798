"""Grammar-constrained decoding, part 2: token masks for the engine's `allowed_tokens(row, generated_ids)` hook,
so that every tool call a model writes is valid JSON matching one tool's schema.

    state = walk(automaton, bytes of the tokens generated so far)
    allowed(token) = walk(state, bytes(token)) is alive  and  min_close(after) <= tokens left - 1

Tokens span several JSON characters (`{"`, `":`, ` "`, `"}}`), so a token is allowed when all its bytes walk
through the automaton (schema_automaton.py). Per state, the allowed tokens are found without looking at
most of the vocabulary: inside a JSON string or free text the tokens with no special byte keep the state
(one precomputed mask), and only the few hundred tokens with a quote, backslash or control byte (or the
trigger's first byte) are walked; elsewhere a depth-first search over the tokens sorted by their bytes (a
trie kept as one sorted list and searched with bisect) follows only the bytes the automaton allows. Each
state's result is cached, so a string the model keeps writing costs one tensor copy per step. The second
condition keeps the budget: once the tokens left run short, only tokens that keep the call finishable are
allowed, so a call is never cut off by max_new_tokens.

Grammar of the reply (hermes format, the tagged format of Qwen 2.5, Hermes and SmolLM3 chat templates):
`auto` = free text, and after `<tool_call>` a constrained call; `required` = `<tool_call>\n{call}\n</tool_call>`
(one, or several with parallel calls) then end of text. A call is `{"name": <one tool's name>, "arguments":
<that tool's parameters>}`. The `json` format is a bare call object (a JSON array of them when parallel).
Same idea as outlines (Willard & Louf 2023) and llama.cpp's GBNF, on our own engine hook.
Tests: tests/agents/test_json_constraint.py (100% of sampled calls from a random model parse and validate).
Speed: bench/agents.py prints ms per step on SmolLM2's 49,152-token vocabulary.
"""

from __future__ import annotations

import bisect
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llmlab.agents.schema_automaton import Automaton
from llmlab.agents.schema_grammar import (
    ANY,
    ARR,
    DEAD,
    F_FREE,
    F_FREEKEY,
    F_STR,
    INF,
    OBJ,
    STR,
    Node,
    escaped,
)
from llmlab.agents.tools import Tool, as_tool
from llmlab.agents.vocab import TokenVocab, vocab_for
from llmlab.errors import ConfigError

SMALL_RANGE = 24  # below this many tokens in a trie branch, walk them one by one instead of bisecting


@dataclass(frozen=True)
class CallFormat:
    """How tool calls are written in the model's text."""

    name: str
    open: str  # text before each call
    close: str  # text after each call
    separator: str  # between two parallel calls
    trigger: str  # what starts a call inside free text; "" when calls cannot follow free text
    arguments_key: str = "arguments"


FORMATS = {
    "hermes": CallFormat("hermes", "<tool_call>\n", "\n</tool_call>", "\n", "<tool_call>"),
    "json": CallFormat("json", "", "", "", ""),
}
TOOL_CHOICES = ("auto", "required", "none")


def resolve_tool_choice(
    tools: Sequence[Tool], tool_choice: str | Mapping[str, Any]
) -> tuple[list[Tool], str]:
    """OpenAI's tool_choice ("auto", "required", "none" or {"type": "function", "function": {"name": N}})
    as (the tools the model may call, "auto" | "required" | "none")."""
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [t for t in tools if t.name == name]
        if not chosen:
            known = ", ".join(t.name for t in tools) or "none"
            raise ConfigError(
                f"tool_choice names the function {name!r}, which is not among the tools ({known})"
            )
        return chosen, "required"
    if tool_choice not in TOOL_CHOICES:
        raise ConfigError(
            f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a function, got {tool_choice!r}"
        )
    if tool_choice != "none" and not tools:
        raise ConfigError(f"tool_choice {tool_choice!r} needs at least one tool")
    return list(tools), tool_choice


def add_call_grammar(auto: Automaton, tools: Sequence[Tool], fmt: CallFormat) -> int:
    """The node of one call: {"name": <tool name>, "arguments": <its parameters>}, one alternative per tool."""
    alternatives = []
    for t in tools:
        name = auto.add(Node(STR, enum=(escaped(t.name),)))
        params = auto.schema(t.parameters)
        alternatives.append(
            auto.add(Node(OBJ, props=((b"name", name, True), (escaped(fmt.arguments_key), params, True))))
        )
    return auto.any_of(*alternatives)


def add_reply_grammar(
    auto: Automaton, tools: Sequence[Tool], mode: str, fmt: CallFormat, parallel: bool
) -> int:
    """The node of a whole reply under tool_choice `mode` ("auto" or "required")."""
    call = add_call_grammar(auto, tools, fmt)
    if fmt.name == "json":
        if mode == "auto":
            raise ConfigError("the json call format has no marker that starts a call; use tool_choice "
                              "'required' with it, or the hermes format")  # fmt: skip
        return auto.add(Node(ARR, item=call, min_items=1)) if parallel else call
    one = auto.seq(auto.lit(fmt.open), call, auto.lit(fmt.close))
    more = auto.seq()  # nothing more, unless parallel calls may follow
    if parallel:
        more = auto.add(Node(ANY))  # placeholder, filled below (recursive: call, then maybe more)
        again = auto.seq(auto.lit(fmt.separator + fmt.open), call, auto.lit(fmt.close), more)
        auto.nodes[more] = Node(ANY, parts=(auto.seq(), again))
    if mode == "required":
        return auto.seq(one, more)
    rest = auto.seq(auto.lit(fmt.open[len(fmt.trigger) :]), call, auto.lit(fmt.close), more)
    return auto.free(fmt.trigger, then=rest)


@dataclass
class _Entry:
    """What a state allows: a base mask (tokens that keep a string or free text going, all costing
    base_cost), tokens walked one by one (alive with their costs, or dead), and whether the text may end."""

    base: np.ndarray | None
    base_cost: int
    alive: np.ndarray
    alive_costs: np.ndarray
    dead: np.ndarray
    eos: bool
    max_cost: int
    min_cost: int  # the cheapest allowed token's cost (INF when none)
    everything: bool  # every token is allowed (free text with nothing risky)


class Masker:
    """Token masks for the states of one automaton over one vocabulary; caches one entry per state."""

    def __init__(self, vocab: TokenVocab, automaton: Automaton, root: int):
        self.vocab, self.auto = vocab, automaton
        self.start = automaton.start(root)
        self._entries: dict[int, _Entry] = {}

    def advance(self, state: int, token: int) -> int:
        piece = self.vocab.pieces[token] if 0 <= token < self.vocab.size else None
        if piece is None:  # end of text or a special token: nothing to walk
            return state
        return self.auto.walk(state, piece)

    def mask(self, state: int, remaining: int | None, eos_ids: Sequence[int]) -> torch.Tensor | None:
        """Bool (V,) of the tokens allowed next, or None when any token is (plain free text)."""
        e = self._entries.get(state)
        if e is None:
            e = self._entries[state] = self._entry(state)
        limit = INF if remaining is None else remaining - 1
        if e.everything and e.max_cost <= limit:
            return None
        if not (e.eos or e.min_cost <= limit):  # too few tokens left: head for the end by the shortest way
            limit = e.min_cost
        return torch.from_numpy(self._build(e, limit, eos_ids))

    def _build(self, e: _Entry, limit: int, eos_ids: Sequence[int]) -> np.ndarray:
        # NumPy, not torch: on a busy machine torch's thread pool made a 49k-element fill cost milliseconds.
        if e.base is not None and e.base_cost <= limit:
            m = e.base.copy()
        else:
            m = np.zeros(self.vocab.size, dtype=np.bool_)
        if e.dead.size:
            m[e.dead] = False
        if e.alive.size:
            if e.max_cost <= limit:
                m[e.alive] = True
            else:
                m[e.alive] = e.alive_costs <= limit
        if e.eos and eos_ids:
            m[list(eos_ids)] = True
        return m

    def _entry(self, state: int) -> _Entry:
        stacks = self.auto.stacks(state)
        tops = [s[-1] for s in stacks if s]
        alive: list[tuple[int, int]] = []
        dead: list[int] = []
        base, base_cost, everything = None, 0, False
        if tops and len(tops) == len(stacks) and all(t[0] in (F_STR, F_FREEKEY) and t[2] == 0 for t in tops):
            # A plain token keeps the state (or only counts characters towards minLength, lowering the cost).
            base, base_cost = self.vocab.string_plain, self.auto.min_close(state)
            for tid, first in self.vocab.string_risky:
                after = self.auto.walk(state, self.vocab.pieces[tid] or b"", first)
                if after >= 0:
                    alive.append((tid, after))
        elif len(stacks) == 1 and tops and tops[0][0] == F_FREE:
            base, base_cost = self.vocab.usable, self._free_base_cost(state, tops[0])
            for tid in self._free_risky(tops[0]):
                after = self.auto.walk(state, self.vocab.pieces[tid] or b"")
                if after >= 0:
                    alive.append((tid, after))
                else:
                    dead.append(tid)
            everything = not dead
        else:
            self._search(state, 0, len(self.vocab.sorted_bytes), 0, alive)
        costs = [self.auto.min_close(s) for _, s in alive]
        return _Entry(
            base=base,
            base_cost=base_cost,
            alive=np.array([t for t, _ in alive], dtype=np.int64),
            alive_costs=np.array(costs, dtype=np.int64),
            dead=np.array(dead, dtype=np.int64),
            eos=self.auto.accepting(state),
            max_cost=max([*costs, base_cost if base is not None else 0]),
            min_cost=min([*costs, base_cost if base is not None and base.any() else INF]),
            everything=everything and self.auto.accepting(state),
        )

    def _free_base_cost(self, state: int, top: tuple[Any, ...]) -> int:
        """Cost after a plain token, which leaves free text with nothing of the trigger matched."""
        node = self.auto.nodes[top[1]]
        return self.auto.min_close(state) + (0 if node.can_end else top[2])

    def _free_risky(self, top: tuple[Any, ...]) -> list[int]:
        trigger, k = self.auto.nodes[top[1]].text, top[2]
        if not trigger:
            return []
        risky = set(self.vocab.containing(trigger[0]))
        if k:
            risky.update(self.vocab.starting_with(trigger[k : k + 1]))
        return sorted(risky)

    def _search(self, state: int, lo: int, hi: int, depth: int, out: list[tuple[int, int]]) -> None:
        """Depth-first over tokens [lo, hi) of the sorted list, which share their first `depth` bytes."""
        keys, ids, auto = self.vocab.sorted_bytes, self.vocab.sorted_ids, self.auto
        if hi - lo <= SMALL_RANGE:
            for i in range(lo, hi):
                after = auto.walk(state, keys[i], depth)
                if after >= 0:
                    out.append((ids[i], after))
            return
        prefix = keys[lo][:depth]
        for b in auto.next_bytes(state):
            child = prefix + bytes((b,))
            left = bisect.bisect_left(keys, child, lo, hi)
            if left >= hi or not keys[left].startswith(child):
                continue
            right = bisect.bisect_left(keys, prefix + bytes((b + 1,)), left, hi) if b < 255 else hi
            after = auto.step(state, b)
            if len(keys[left]) == depth + 1:
                out.append((ids[left], after))
                left += 1
            if left < right:
                self._search(after, left, right, depth + 1, out)


class TokenConstraint:
    """The `allowed_tokens(row, generated_ids)` hook: one automaton state per batch row, advanced by the
    tokens generated since the last call. Build a new one per request (they share the cached masks).

    Args:
        max_tokens: the generation budget (max_new_tokens); with it, calls always finish in time.
        start_text: text already written at the start of the reply (put in the prompt), e.g. a forced
            `<tool_call>\n{"name": "calculator", "arguments": `.
    """

    def __init__(
        self, masker: Masker, eos_ids: Sequence[int], max_tokens: int | None = None, start_text: str = ""
    ):
        self.masker, self.eos_ids, self.max_tokens = masker, list(eos_ids), max_tokens
        self.start = masker.auto.walk(masker.start, start_text.encode("utf-8"))
        if self.start == DEAD:
            raise ConfigError(f"the reply cannot start with {start_text!r} under this grammar")
        self._rows: dict[int, tuple[int, int]] = {}
        self.steps, self.seconds = 0, 0.0

    def __call__(self, row: int, generated_ids: Sequence[int]) -> torch.Tensor | None:
        started = time.perf_counter()
        done, state = self._rows.get(row, (0, self.start))
        if len(generated_ids) < done:  # a new sequence in this row
            done, state = 0, self.start
        for token in generated_ids[done:]:
            if state < 0:
                break
            state = self.masker.advance(state, int(token))
        self._rows[row] = (len(generated_ids), state)
        if state == DEAD:
            return None
        remaining = None if self.max_tokens is None else self.max_tokens - len(generated_ids)
        result = self.masker.mask(state, remaining, self.eos_ids)
        self.steps += 1
        self.seconds += time.perf_counter() - started
        return result

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / max(self.steps, 1)


_MASKERS: OrderedDict[tuple[int, str], Masker] = OrderedDict()
MASKER_CACHE = 32


def _masker(
    vocab: TokenVocab,
    key: str,
    build: Any,
    min_string_length: int = 0,
    numbers: tuple[bytes, ...] | None = None,
) -> Masker:
    """Maskers are cached by vocabulary and grammar, so requests with the same tools share their masks."""
    cache_key = (id(vocab), f"{min_string_length}:{numbers}:{key}")
    found = _MASKERS.get(cache_key)
    if found is None:
        auto = Automaton(min_string_length, numbers)
        found = _MASKERS[cache_key] = Masker(vocab, auto, build(auto))
        while len(_MASKERS) > MASKER_CACHE:
            _MASKERS.popitem(last=False)
    _MASKERS.move_to_end(cache_key)
    return found


def _eos_ids(tokenizer: Any, eos_ids: Sequence[int] | None) -> list[int]:
    if eos_ids is not None:
        return list(eos_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    return [eos] if isinstance(eos, int) else list(eos or [])


def tool_call_constraint(
    tokenizer: Any,
    tools: Sequence[Tool | Any],
    tool_choice: str | Mapping[str, Any] = "auto",
    *,
    call_format: str = "hermes",
    parallel: bool = True,
    max_tokens: int | None = None,
    vocab_size: int | None = None,
    eos_ids: Sequence[int] | None = None,
    start_text: str = "",
    nonempty_strings: bool = True,
    arithmetic_numbers: Sequence[str] | None = None,
) -> TokenConstraint | None:
    """The allowed_tokens hook that makes every tool call valid (None for tool_choice "none").

    Args:
        tools: Tools, typed functions or OpenAI tool dicts.
        tool_choice: "auto" (text, or calls after the trigger), "required", "none", or a named function.
        call_format: "hermes" (`<tool_call>` tags) or "json" (a bare call object; required only).
        parallel: allow several calls in one reply.
        max_tokens: the generation budget, so that calls always finish within it.
        vocab_size: the width of the model's logits (default: the tokenizer's length).
        eos_ids: the tokens that end the text (default: the tokenizer's EOS).
        start_text: the start of the reply, already in the prompt (see TokenConstraint).
        nonempty_strings: strings without a minLength must have at least one character (an empty path,
            query or expression is a small model giving up, never what a tool wants).
        arithmetic_numbers: the only numbers `"format": "arithmetic"` strings may contain (caller.py takes
            them from the conversation); None allows any.
    """
    if call_format not in FORMATS:
        raise ConfigError(f"call format must be one of {', '.join(FORMATS)}, got {call_format!r}")
    chosen, mode = resolve_tool_choice([as_tool(t) for t in tools], tool_choice)
    if mode == "none":
        return None
    fmt = FORMATS[call_format]
    vocab = vocab_for(tokenizer, vocab_size)
    key = json.dumps([mode, call_format, parallel, [t.schema() for t in chosen]], sort_keys=True)
    build = lambda auto: add_reply_grammar(auto, chosen, mode, fmt, parallel)  # noqa: E731
    numbers = None if arithmetic_numbers is None else tuple(sorted({n.encode() for n in arithmetic_numbers}))
    masker = _masker(vocab, key, build, 1 if nonempty_strings else 0, numbers)
    return TokenConstraint(masker, _eos_ids(tokenizer, eos_ids), max_tokens, start_text)


def json_schema_constraint(
    tokenizer: Any,
    schema: Mapping[str, Any],
    *,
    max_tokens: int | None = None,
    vocab_size: int | None = None,
    eos_ids: Sequence[int] | None = None,
) -> TokenConstraint:
    """The allowed_tokens hook for a reply that is one JSON value matching `schema` (response_format)."""
    vocab = vocab_for(tokenizer, vocab_size)
    key = json.dumps(["schema", schema], sort_keys=True)
    masker = _masker(vocab, key, lambda auto: auto.schema(schema))
    return TokenConstraint(masker, _eos_ids(tokenizer, eos_ids), max_tokens)
