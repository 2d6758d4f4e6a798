"""One assistant reply that may call tools: decide, choose the tool, write its arguments under the grammar.

    auto:      generate text until `<tool_call>` (stop string) -> no trigger: a text reply, done
               (abstain="channel": a text reply when no tool's channel score beats selection.NO_TOOL's)
    choose:    the tool with the best score (selection.py: channel by default)
    arguments: prompt + text + `<tool_call>\\n{"name": "<tool>", "arguments": ` -> constrained decoding of
               the rest (json_constraint.py), so the call parses and validates by construction; the
               grammar sees the parameters narrowed by the argument policies (arguments.py)
    parallel:  after a call, let the model start another `<tool_call>` (chosen by direct scoring)

With `constrain=False` the model writes the whole reply freely and the calls are parsed from it (the
baseline the benchmark compares with). The reply keeps the text exactly as the model wrote it, so the next
turn of a conversation shows the model its own calls.
Tests: tests/agents/test_caller.py (scripted engine: each path; tiny random model: calls always valid).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.agents.arguments import (
    OPTIONAL_POLICIES,
    conversation_texts,
    copy_schema,
    numbers,
    spans,
    stated_schema,
)
from llmlab.agents.json_constraint import FORMATS, resolve_tool_choice, tool_call_constraint
from llmlab.agents.parsing import ToolCall, parse_tool_calls
from llmlab.agents.prompt import LISTINGS, render
from llmlab.agents.selection import SELECTIONS, channel_scores, direct_scores, no_tool_score
from llmlab.agents.tools import Tool, as_tool
from llmlab.errors import ConfigError
from llmlab.generation.config import GenerationConfig


@dataclass
class CallerConfig:
    """How tool calls are decoded."""

    constrain: bool = True
    """Constrained decoding: every call is valid JSON for its tool's schema. Off: free text, then parsed."""
    selection: str = "channel"
    """How the tool is chosen: channel (score the request against each tool's description), direct (score
    each tool name after the conversation) or greedy (token by token under the grammar)."""
    max_call_tokens: int = 96
    """Tokens for one call's arguments."""
    max_text_tokens: int = 256
    """Tokens for a text reply (the answer, or the text before a call)."""
    parallel: bool = False
    """Allow several calls in one reply."""
    max_calls: int = 4
    """At most this many calls in one reply (with parallel)."""
    listing: str = "compact"
    """How tools are shown to the model: compact (one line each) or json (their schemas)."""
    examples: bool = True
    """Show each tool's worked example as earlier turns of the conversation."""
    call_format: str = "hermes"
    """hermes (`<tool_call>` tags) or json (a bare call object; tool_choice required only)."""
    ground_numbers: bool = True
    """Numbers in arithmetic arguments (the calculator's expression) must be ones the conversation mentions,
    in digits or words: a small model copies numbers well but invents wrong ones."""
    copy_arguments: bool | None = None
    """String arguments (without an enum or format) may only be spans of the user's messages and tool
    results, numbers only numbers they write (arguments.py); a type nothing fits stays free. None: on for
    models under COPY_BELOW parameters (SmolLM2-135M invents values), off for larger ones."""
    abstain: str = "model"
    """Under tool_choice auto, who decides whether to call: model (a call when the model writes
    `<tool_call>`) or channel (a call when some tool explains the request better than answering without a
    tool does, selection.NO_TOOL; then the call is decoded as under required)."""
    optional_arguments: str = "stated"
    """stated: an optional parameter whose value the message states (one of its enum values, or a word of
    its name, appears in it) must be written, an optional enum or boolean it does not state is left out
    (its default stands), the required parameters are written first; model: the model decides whether to
    write each optional parameter."""

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ConfigError(f"--selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if self.listing not in LISTINGS:
            raise ConfigError(f"--listing must be one of {', '.join(LISTINGS)}, got {self.listing!r}")
        if self.call_format not in FORMATS:
            raise ConfigError(f"--call-format must be one of {', '.join(FORMATS)}, got {self.call_format!r}")
        if self.optional_arguments not in OPTIONAL_POLICIES:
            raise ConfigError(
                f"--optional-arguments must be one of {', '.join(OPTIONAL_POLICIES)}, "
                f"got {self.optional_arguments!r}"
            )
        if self.abstain not in ABSTAIN:
            raise ConfigError(f"--abstain must be one of {', '.join(ABSTAIN)}, got {self.abstain!r}")
        if self.copy_arguments not in (None, True, False):
            raise ConfigError(
                f"copy_arguments must be True, False or None (auto), got {self.copy_arguments!r}"
            )
        for name in ("max_call_tokens", "max_text_tokens", "max_calls"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


@dataclass
class Reply:
    """What the model replied: its text (calls included, as written), the text without calls, the calls."""

    text: str
    content: str
    calls: list[ToolCall]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    """The selection scores of the first call's tools (log-probabilities), when scored."""


class ToolCaller:
    """Replies with tool calls from an Engine. `reply(messages, tool_choice)` is one assistant turn."""

    def __init__(
        self,
        engine: Any,
        tools: Sequence[Tool | Any],
        config: CallerConfig | None = None,
        generation: GenerationConfig | None = None,
    ):
        self.engine, self.tools = engine, [as_tool(t) for t in tools]
        self.config = config or CallerConfig()
        self.generation = generation or GenerationConfig(greedy=True)
        self.fmt = FORMATS[self.config.call_format]
        copy = self.config.copy_arguments
        self.copy = copy if copy is not None else _parameter_count(engine) < COPY_BELOW

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> str:
        c = self.config
        return render(
            self.engine.tokenizer, messages, self.tools, fmt=self.fmt, listing=c.listing, examples=c.examples
        )

    def reply(
        self,
        messages: Sequence[Mapping[str, Any]],
        tool_choice: str | Mapping[str, Any] = "auto",
        request: str | None = None,
        thought: str = "",
    ) -> Reply:
        """One assistant turn. `request` is what the channel score explains (default: the last user message);
        `thought` is text the reply starts with, written for the model (a plan's step), before its call."""
        started = time.perf_counter()
        allowed, mode = resolve_tool_choice(self.tools, tool_choice)
        prompt = self.prompt(messages) + (thought + "\n" if thought else "")
        self._usage = [len(self.engine.encode(prompt)), 0]
        self._numbers = conversation_numbers(messages) if self.config.ground_numbers else None
        self._texts = conversation_texts(messages)
        self._scored: dict[str, float] = {}
        if mode == "none":
            out = self._generate(prompt, self.config.max_text_tokens)
            reply = Reply(out.text, out.text.strip(), [])
        elif not self.config.constrain:
            reply = self._free(prompt, allowed)
        else:
            reply = self._constrained(prompt, allowed, mode, request or _last_user(messages))
        if thought:
            reply.text, reply.content = thought + "\n" + reply.text, (thought + "\n" + reply.content).strip()
        reply.prompt_tokens, reply.completion_tokens = self._usage
        reply.seconds = time.perf_counter() - started
        return reply

    def _generate(self, prompt: str, max_new_tokens: int, stop: Sequence[str] = (), hook: Any = None) -> Any:
        config = dataclasses.replace(self.generation, max_new_tokens=max_new_tokens, stop=list(stop))
        out = self.engine.generate([prompt], config, allowed_tokens=hook)[0]
        self._usage[1] += out.completion_tokens
        return out

    def _free(self, prompt: str, allowed: list[Tool]) -> Reply:
        c = self.config
        stop = [] if c.parallel or not self.fmt.close else [self.fmt.close.strip()]
        out = self._generate(prompt, c.max_text_tokens + c.max_call_tokens, stop)
        text = out.text + (stop[0] if stop and self._wrote(out, stop[0]) else "")
        parsed = parse_tool_calls(text, allowed)
        return Reply(text, parsed.content, parsed.calls)

    def _constrained(self, prompt: str, allowed: list[Tool], mode: str, request: str) -> Reply:
        c, fmt = self.config, self.fmt
        written = ""
        if mode == "auto" and c.abstain == "channel":
            self._scored = channel_scores(self.engine, request, allowed)
            if max(self._scored.values()) <= no_tool_score(self.engine, request):
                out = self._generate(prompt, c.max_text_tokens, [fmt.trigger])
                return Reply(out.text, out.text.strip(), [], scores=self._scored)
        elif mode == "auto":
            out = self._generate(prompt, c.max_text_tokens, [fmt.trigger])
            if not self._wrote(out, fmt.trigger):
                return Reply(out.text, out.text.strip(), [])
            written = out.text
        calls: list[ToolCall] = []
        scores: dict[str, float] = {}
        while True:
            lead = fmt.separator if calls else ""
            name, found = self._choose(prompt + written + lead, allowed, request, first=not calls)
            scores = scores or found
            call_text = self._arguments(prompt + written + lead, allowed, name)
            written += lead + call_text
            calls += parse_tool_calls(call_text, allowed).calls
            if not (c.parallel and len(calls) < c.max_calls and self._another(prompt + written)):
                break
        return Reply(
            written, written.split(fmt.trigger)[0].strip() if fmt.trigger else "", calls, scores=scores
        )

    def _choose(
        self, context: str, allowed: list[Tool], request: str, first: bool
    ) -> tuple[str | None, dict[str, float]]:
        """The tool to call (None: let the grammar choose greedily) and the scores behind the choice."""
        if len(allowed) == 1:
            return allowed[0].name, {}
        selection = self.config.selection if first or self.config.selection == "greedy" else "direct"
        if selection == "greedy":
            return None, {}
        if selection == "channel" and first and self._scored:
            scores = self._scored
        elif selection == "channel":
            scores = channel_scores(self.engine, request, allowed)
        else:
            scores = direct_scores(self.engine, context, allowed, self.fmt.open + '{"name": "')
        return max(scores, key=scores.__getitem__), scores

    def _arguments(self, context: str, allowed: list[Tool], name: str | None) -> str:
        """The call's text, from the opening tag to the closing one, its arguments decoded under the grammar."""
        fmt = self.fmt
        choice: str | dict[str, Any]
        if name is None:
            start, choice = fmt.open, "required"
        else:
            start = f'{fmt.open}{{"name": "{name}", "{fmt.arguments_key}": '
            choice = {"type": "function", "function": {"name": name}}
        hook = tool_call_constraint(
            self.engine.tokenizer,
            self._argument_tools(allowed),
            choice,
            call_format=fmt.name,
            parallel=False,
            max_tokens=self.config.max_call_tokens,
            vocab_size=getattr(self.engine.model.config, "vocab_size", None),
            eos_ids=sorted(self.engine.eos_ids),
            start_text=start,
            arithmetic_numbers=self._numbers,
        )
        out = self._generate(context + start, self.config.max_call_tokens, hook=hook)
        return start + out.text

    def _argument_tools(self, allowed: list[Tool]) -> list[Tool]:
        """The tools as the grammar sees them: parameters narrowed by the argument policies (the calls are
        still validated against the tools' own schemas)."""
        stated_only = self.config.optional_arguments == "stated"
        if not (self.copy or stated_only):
            return allowed
        texts = self._texts
        span_list, number_list = (spans(texts), numbers(texts)) if self.copy else ([], [])
        out = []
        for t in allowed:
            params = stated_schema(t.parameters, "\n".join(texts)) if stated_only else dict(t.parameters)
            if self.copy:
                params = copy_schema(params, span_list, number_list)
            out.append(dataclasses.replace(t, parameters=params))
        return out

    def _another(self, context: str) -> bool:
        """After a call: does the model start another one right away?"""
        marker = self.fmt.separator + self.fmt.trigger
        probe = self._generate(context, len(self.engine.encode(marker)) + 2, [self.fmt.trigger])
        return self._wrote(probe, self.fmt.trigger) and not probe.text.strip()

    def _wrote(self, out: Any, marker: str) -> bool:
        """Whether generation stopped at `marker` (the engine cuts stop strings from the text)."""
        return marker in self.engine.tokenizer.decode(out.token_ids)


ABSTAIN = ("model", "channel")
COPY_BELOW = 1_000_000_000  # copy_arguments=None: copy values for models with fewer parameters


def _parameter_count(engine: Any) -> int:
    model = getattr(engine, "model", None)
    try:
        return sum(p.numel() for p in model.parameters())  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return 0


NOT_QUANTITIES = re.compile(r"\[\d+\]|\S*[/\\]\S*")  # citation marks, paths and URLs
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\d)")
WORD_NUMBERS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dozen": "12", "twice": "2", "double": "2",
    "half": "2", "triple": "3", "squared": "2", "square": "2", "cubed": "3", "percent": "100", "%": "100",
}  # fmt: skip
WORDS = re.compile(r"\b(" + "|".join(k for k in WORD_NUMBERS if k.isalpha()) + r")\b|%", re.I)


def conversation_numbers(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The numbers the user's messages and the tool results mention, in digits or in words ("five",
    "twice", "squared" -> 2, "%" -> 100)."""
    found: set[str] = set()
    for content in conversation_texts(messages):
        text = NOT_QUANTITIES.sub(" ", content)  # "[1]" numbers a passage; paths hold numbers
        found.update(NUMBER.findall(text.replace(",", "")))
        found.update(WORD_NUMBERS[w.group(0).lower()] for w in WORDS.finditer(text))
    return sorted(found) or ["1"]


def _last_user(messages: Sequence[Mapping[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return str(m["content"])
    return ""
