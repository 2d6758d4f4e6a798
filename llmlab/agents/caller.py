"""One assistant reply that may call tools: decide, choose the tool, write its arguments under the grammar.

    auto:      generate text until `<tool_call>` (stop string) -> no trigger: a text reply, done
               (abstain="channel": a text reply when no tool's channel score beats selection.NO_TOOL's)
    choose:    the tool with the best score (selection.py: channel by default)
    arguments: prompt + text + `<tool_call>\\n{"name": "<tool>", "arguments": ` -> constrained decoding of
               the rest (json_constraint.py), so the call parses and validates by construction; the
               grammar sees the parameters narrowed by the argument policies (arguments.py)
    parallel:  after a call, another when the model starts another `<tool_call>` itself (next_call="probe",
               its tool chosen by direct scoring), or (next_call="score") another call of the same tool
               when the request holds an unused value for it that the model scores about as likely as the
               last one; a later call's first parameter leaves out the values earlier calls used
    values:    value_choice="likelihood": each value with candidates (an enum, or the copied spans and
               numbers) rescored as a whole after decoding, the likeliest written (off by default: it
               measured worse than greedy decoding on the project tasks); greedy with copied values: a
               string is rescored against the spans that continue it (arguments.longer_spans), tokenized
               as the tokenizer would: under the byte-level grammar the model may spell "Buenos" B|ue|n|os
               and then close the string, where after Bu|enos it writes " Aires"

With `constrain=False` the model writes the whole reply freely and the calls are parsed from it (the
baseline the benchmark compares with). The reply keeps the text exactly as the model wrote it, so the next
turn of a conversation shows the model its own calls.
Tests: tests/agents/test_caller.py (scripted engine: each path; tiny random model: calls always valid).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.agents.arguments import (
    OPTIONAL_POLICIES,
    conversation_texts,
    copy_schema,
    distinct_items,
    longer_spans,
    numbers,
    spans,
    stated_schema,
    unit_numbers,
    unit_schema,
)
from llmlab.agents.grounding import ANSWER_STYLES, AUTO_STYLE, answer_for
from llmlab.agents.json_constraint import FORMATS, resolve_tool_choice, tool_call_constraint
from llmlab.agents.parsing import ToolCall, parse_tool_calls
from llmlab.agents.prompt import LISTINGS, render
from llmlab.agents.selection import (
    SELECTIONS,
    channel_scores,
    direct_scores,
    no_tool_score,
    shared_prefix_logprobs,
)
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
    value_choice: str = "greedy"
    """How a parameter's value is chosen among its candidates (its enum, or with copy_arguments the spans and
    numbers of the conversation that fit its type): greedy (token by token under the grammar), likelihood
    (each candidate scored by the model's log-probability of the call text with it, given the call so far;
    the best one is written) or likelihood-mean (the same, divided by the candidate's token count)."""
    next_call: str = "probe"
    """With parallel, whether another call follows one: probe (greedy: the model starts `<tool_call>` right
    away, which SmolLM2 never does) or score (another call of the same tool when the request holds a value
    for its first parameter that no call used yet and that the model scores about as likely as the value
    the last call wrote; see ToolCaller._another_scored). score makes the project's parallel tasks right
    twice as often but adds calls to 4 of the 28 single-call tasks, so it is not the default."""
    answer_style: str = "auto"
    """A text reply after tool results (grounding.py): free (the model's text), template (the results
    themselves when the text does not hold their values), splice (the text cut before its first invented
    number, then the values); auto: template for models under COPY_BELOW parameters, free for larger ones."""

    def __post_init__(self) -> None:
        choices = {
            "selection": SELECTIONS, "listing": LISTINGS, "call_format": FORMATS,
            "optional_arguments": OPTIONAL_POLICIES, "value_choice": VALUE_CHOICES, "next_call": NEXT_CALLS,
            "answer_style": ANSWER_STYLES, "abstain": ABSTAIN,
        }  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
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
    free: str | None = None
    """The model's own text when a grounded answer replaced it (CallerConfig.answer_style)."""


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
        style = self.config.answer_style
        small = (copy is None or style == "auto") and _parameter_count(engine) < COPY_BELOW
        self.copy = copy if copy is not None else small
        self.answer_style = style if style != "auto" else AUTO_STYLE if small else "free"

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
        results: Sequence[str] | None = None,
    ) -> Reply:
        """One assistant turn. `request` is what the channel score explains (default: the last user message);
        `thought` is text the reply starts with, written for the model (a plan's step), before its call;
        `results`: the tool results a text reply answers (default: the trailing `tool` messages), whose
        values it must hold (answer_style)."""
        started = time.perf_counter()
        allowed, mode = resolve_tool_choice(self.tools, tool_choice)
        prompt = self.prompt(messages) + (thought + "\n" if thought else "")
        self._usage = [len(self.engine.encode(prompt)), 0]
        self._numbers = conversation_numbers(messages) if self.config.ground_numbers else None
        self._texts = conversation_texts(messages)
        self._scored: dict[str, float] = {}
        if mode == "none":  # a text answer: a call the model starts writing anyway is cut off
            out = self._generate(prompt, self.config.max_text_tokens, [self.fmt.trigger])
            reply = Reply(out.text, out.text.strip(), [])
        elif not self.config.constrain:
            reply = self._free(prompt, allowed)
        else:
            reply = self._constrained(prompt, allowed, mode, request or _last_user(messages))
        answer = (
            reply.content if reply.calls else answer_for(reply.content, messages, results, self.answer_style)
        )
        if answer != reply.content:  # a text reply after tool results that does not hold their values
            reply.free, reply.text, reply.content = reply.content, answer, answer
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
            name: str | None
            found: dict[str, float]
            if calls and c.next_call == "score":  # the rule found another value for the last call's tool
                name, found = calls[-1].name, {}
            else:
                name, found = self._choose(prompt + written + lead, allowed, request, first=not calls)
            scores = scores or found
            before = prompt + written + lead
            call_text = self._arguments(before, allowed, name, calls)
            written += lead + call_text
            calls += parse_tool_calls(call_text, allowed).calls
            if not (
                c.parallel and len(calls) < c.max_calls and self._another(prompt + written, before, calls)
            ):
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

    def _arguments(
        self, context: str, allowed: list[Tool], name: str | None, earlier: Sequence[ToolCall] = ()
    ) -> str:
        """The call's text, from the opening tag to the closing one, its arguments decoded under the grammar
        (then, with value_choice likelihood, each value with candidates chosen by scoring them)."""
        fmt = self.fmt
        choice: str | dict[str, Any]
        if name is None:
            start, choice = fmt.open, "required"
        else:
            start = f'{fmt.open}{{"name": "{name}", "{fmt.arguments_key}": '
            choice = {"type": "function", "function": {"name": name}}
        narrowed = self._argument_tools(allowed, earlier)
        hook = tool_call_constraint(
            self.engine.tokenizer,
            narrowed,
            choice,
            call_format=fmt.name,
            parallel=False,
            max_tokens=self.config.max_call_tokens,
            vocab_size=getattr(self.engine.model.config, "vocab_size", None),
            eos_ids=sorted(self.engine.eos_ids),
            start_text=start,
            arithmetic_numbers=_numbers_left(self._numbers, self._texts, earlier),
        )
        out = self._generate(context + start, self.config.max_call_tokens, hook=hook)
        text = start + out.text
        if name is not None and (self.config.value_choice != "greedy" or self.copy):
            tool = next(t for t in narrowed if t.name == name)
            text = self._likely_values(context, start, text, tool, allowed)
        return text

    def _likely_values(self, context: str, start: str, text: str, tool: Tool, allowed: list[Tool]) -> str:
        """The call `text` with each value that has candidates (an enum in the narrowed schema) replaced by
        the candidate the model finds most likely after the call so far; parameters in the order written.
        value_choice greedy: only a copied string written and its longer spans (see the module docstring)."""
        parsed = parse_tool_calls(text, allowed).calls
        props = tool.parameters.get("properties")
        if len(parsed) != 1 or parsed[0].error is not None or not isinstance(props, Mapping):
            return text
        arguments = distinct_items(parsed[0].arguments)  # a copied list: each value once
        keys = list(arguments)
        for i, key in enumerate(keys):
            candidates = props.get(key, {}).get("enum") if isinstance(props.get(key), Mapping) else None
            if self.config.value_choice == "greedy" and isinstance(candidates, list):
                candidates = longer_spans(arguments[key], candidates)
            if not isinstance(candidates, list) or len(candidates) < 2:
                continue
            head = _json_object({k: arguments[k] for k in keys[:i]}, open_end=True) + json.dumps(key) + ": "
            tail = ", " if i + 1 < len(keys) else "}"
            conts = [json.dumps(v, ensure_ascii=False) + tail for v in candidates]
            scored = shared_prefix_logprobs(self.engine, context + start + head, conts, keep=VALUE_BEAM)
            self._usage[1] += sum(n for _, n in scored)
            mean = self.config.value_choice == "likelihood-mean"
            values = [total / n if mean else total for total, n in scored]
            arguments[key] = candidates[max(range(len(values)), key=values.__getitem__)]
        if arguments == parsed[0].arguments:
            return text
        return start + _json_object(arguments) + "}" + self.fmt.close

    def _argument_tools(self, allowed: list[Tool], earlier: Sequence[ToolCall] = ()) -> list[Tool]:
        """The tools as the grammar sees them: parameters narrowed by the argument policies (the calls are
        still validated against the tools' own schemas). After earlier calls of a tool in the same reply, its
        first parameter's candidates leave out the values those calls used (and spans that overlap them),
        while others remain: "Paris and Rome" gives Rome to the second call."""
        stated_only = self.config.optional_arguments == "stated"
        if not (self.copy or stated_only):
            return allowed
        texts = self._texts
        span_list, number_list = (spans(texts), numbers(texts)) if self.copy else ([], [])
        out = []
        for t in allowed:
            params = stated_schema(t.parameters, "\n".join(texts)) if stated_only else dict(t.parameters)
            if self.copy:
                params = unit_schema(copy_schema(params, span_list, number_list), unit_numbers(texts))
            params = _unused_first(params, [c.arguments for c in earlier if c.name == t.name and not c.error])
            out.append(dataclasses.replace(t, parameters=params))
        return out

    def _another(self, context: str, before: str, calls: Sequence[ToolCall]) -> bool:
        """After a call: does the model start another one right away (next_call probe), or does the request
        hold another value for it (next_call score, see _another_scored)?"""
        marker = self.fmt.separator + self.fmt.trigger
        if self.config.next_call == "score":
            return self._another_scored(context, before, calls)
        probe = self._generate(context, len(self.engine.encode(marker)) + 2, [self.fmt.trigger])
        return self._wrote(probe, self.fmt.trigger) and not probe.text.strip()

    def _another_scored(self, context: str, before: str, calls: Sequence[ToolCall]) -> bool:
        """Another call of the last call's tool when the request holds a value for its first parameter that
        no call has used yet and that the model finds about as likely there (log-probability at most
        NEXT_CALL_MARGIN below) as the value the last call wrote, both scored at the start of a call; for a
        parameter without candidates (an arithmetic expression): when a number of the request is unused.
        The next call is then of the same tool."""
        last, fmt = calls[-1] if calls else None, self.fmt
        if last is None or last.error is not None or not fmt.trigger:
            return False
        tool = next((t for t in self._argument_tools(self.tools) if t.name == last.name), None)
        props = tool.parameters.get("properties") if tool is not None else None
        if not isinstance(props, Mapping) or not props or next(iter(props)) not in last.arguments:
            return False
        key = next(iter(props))
        enum = props[key].get("enum") if isinstance(props[key], Mapping) else None
        if not isinstance(enum, list):
            used_numbers = set(NUMBER.findall(json.dumps([c.arguments for c in calls])))
            return any(str(n) not in used_numbers for n in numbers(self._texts))
        used = [c.arguments[key] for c in calls if c.name == last.name and key in c.arguments]
        left = [v for v in enum if not any(_overlaps(v, u) for u in used)]
        if not left:
            return False
        start = f'{fmt.open}{{"name": "{last.name}", "{fmt.arguments_key}": {{{json.dumps(key)}: '
        ((own, _),) = shared_prefix_logprobs(
            self.engine, before + start, [json.dumps(last.arguments[key], ensure_ascii=False)]
        )
        scored = shared_prefix_logprobs(
            self.engine,
            context + fmt.separator + start,
            [json.dumps(v, ensure_ascii=False) for v in left],
            keep=VALUE_BEAM,
        )
        return max(total for total, _ in scored) >= own - NEXT_CALL_MARGIN

    def _wrote(self, out: Any, marker: str) -> bool:
        """Whether generation stopped at `marker` (the engine cuts stop strings from the text)."""
        return marker in self.engine.tokenizer.decode(out.token_ids)


ABSTAIN = ("model", "channel")
VALUE_CHOICES = ("greedy", "likelihood", "likelihood-mean")
NEXT_CALLS = ("probe", "score")
NEXT_CALL_MARGIN = 5.0  # nats; next_call score (set on the train split of parallel.jsonl)
VALUE_BEAM = 16  # value_choice likelihood: candidates scored in full, the likeliest by their first token
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


def _json_object(values: Mapping[str, Any], open_end: bool = False) -> str:
    """`values` as the grammar writes an object ({"a": 1, "b": "x"}); open_end: without the closing brace,
    ready for the next key."""
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
    return "{" + body + (", " if body else "") if open_end else "{" + body + "}"


def _overlaps(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() in b.lower() or b.lower() in a.lower()
    return bool(a == b)


def _unused_first(params: dict[str, Any], earlier: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`params` with its first property's enum rid of the values `earlier` calls gave it (and of strings
    that contain one or lie inside one), when any candidate is left."""
    props = params.get("properties")
    if not earlier or not isinstance(props, Mapping) or not props:
        return params
    key = next(iter(props))
    sub, used = props[key], [e[key] for e in earlier if key in e]
    if not isinstance(sub, Mapping) or not isinstance(sub.get("enum"), list) or not used:
        return params
    left = [v for v in sub["enum"] if not any(_overlaps(v, u) for u in used)]
    if not left:
        return params
    return {**params, "properties": {**props, key: {**sub, "enum": left}}}


def _numbers_left(
    found: list[str] | None, texts: Sequence[str], earlier: Sequence[ToolCall]
) -> list[str] | None:
    """The numbers a later call's arithmetic may use: those the conversation writes more often than the
    earlier calls of the reply did (word numbers stay), or all of them when none is left."""
    if found is None or not earlier:
        return found
    written = NUMBER.findall(" ".join(NOT_QUANTITIES.sub(" ", t).replace(",", "") for t in texts))
    used = NUMBER.findall(" ".join(json.dumps(c.arguments) for c in earlier))
    left = [n for n in found if n not in written or written.count(n) > used.count(n)]
    return left or found
