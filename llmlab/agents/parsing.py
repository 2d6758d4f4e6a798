"""Tool calls in a model's reply: found leniently, checked strictly.

Formats found, in this order:
- tagged calls as chat templates write them: `<tool_call>{...}</tool_call>` (Hermes, Qwen 2.5, SmolLM3),
  `<function_call>`, `<functioncall>`, Mistral's `[TOOL_CALLS][...]`, Llama 3's `<|python_tag|>{...}`;
- JSON in a ```json code fence, or bare in the text, that looks like a call;
- Python call syntax, `get_weather(city="Paris")` or a list of them (the Berkeley Function Calling
  Leaderboard's prompt format), only for names that are tools.
A call is `{"name", "arguments"}` (or `"parameters"`), OpenAI's `{"type": "function", "function": {"name",
"arguments": "<JSON string>"}}`, a list of these, or `{"tool_calls": [...]}`.

Small-model noise is tolerated: code fences, a missing closing tag, text before or after the JSON, arguments
given as a JSON string. The schema is not: an unknown tool, missing, unexpected or mistyped arguments and
malformed JSON give the call an `error`, a sentence the agent returns to the model as the observation.
Nothing here raises on model output. Tests: tests/agents/test_parsing.py (hand-written tricky replies).
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.agents.tools import Tool, as_tool
from llmlab.agents.validation import check_arguments

TAGS = (
    (re.compile(r"<tool_call>\s*"), re.compile(r"\s*</tool_call>")),
    (re.compile(r"<function_?call>\s*"), re.compile(r"\s*</function_?call>")),
    (re.compile(r"\[TOOL_CALLS\]\s*"), re.compile(r"\s*(?:</s>|\[/TOOL_CALLS\])")),
    (re.compile(r"<\|python_tag\|>\s*"), re.compile(r"\s*<\|eom_id\|>|\s*<\|eot_id\|>")),
)
CLOSINGS = (
    "</tool_call>",
    "</function_call>",
    "</functioncall>",
    "[/TOOL_CALLS]",
    "</s>",
    "<|eom_id|>",
    "<|eot_id|>",
)
FENCE = re.compile(r"```[ \t]*(?:json|JSON|python|tool_call)?[ \t]*\n?(.*?)(?:```|$)", re.S)


@dataclass
class ToolCall:
    """One call found in a reply. `error` is None when the call names a tool and its arguments validate."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{secrets.token_hex(12)}")
    error: str | None = None
    raw: str = ""

    def openai(self) -> dict[str, Any]:
        """OpenAI's shape: {"id", "type": "function", "function": {"name", "arguments": "<JSON string>"}}."""
        arguments = json.dumps(self.arguments, ensure_ascii=False)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


@dataclass
class ParsedReply:
    """A reply split into its text and its tool calls."""

    content: str
    calls: list[ToolCall] = field(default_factory=list)

    @property
    def valid_calls(self) -> list[ToolCall]:
        return [c for c in self.calls if c.error is None]

    @property
    def errors(self) -> list[str]:
        return [c.error for c in self.calls if c.error is not None]

    def openai_tool_calls(self) -> list[dict[str, Any]]:
        """The valid calls as an OpenAI message's `tool_calls` list."""
        return [c.openai() for c in self.valid_calls]


def parse_tool_calls(text: str, tools: Sequence[Tool | Any] = ()) -> ParsedReply:
    """Find the tool calls in `text` and check each against `tools` (by name and argument schema).

    With no tools given, calls are found but not checked.
    """
    known = {t.name: t for t in (as_tool(x) for x in tools)}
    tagged = _tagged(text)
    if tagged is not None:
        content, pieces = tagged
        calls = [c for piece in pieces for c in _calls_in(piece, known, must=True)]
        return ParsedReply(content, calls)
    for m in FENCE.finditer(text):
        calls = _calls_in(m.group(1), known, must=False)
        if calls:
            return ParsedReply((text[: m.start()] + text[m.end() :]).strip(), calls)
    found = _bare_json(text, known)
    if found is not None:
        return found
    python = _python_calls(text.strip(), known)
    if python:
        return ParsedReply("", python)
    return ParsedReply(text.strip())


def _tagged(text: str) -> tuple[str, list[str]] | None:
    """(text outside the tags, the inside of each tag) for the first tag kind present. The JSON decides
    where a call ends (a string may hold the closing tag); a missing closing tag ends the call at the next
    opening tag or at the end of the text."""
    for opening, closing in TAGS:
        if not opening.search(text):
            continue
        pieces, outside, pos = [], [], 0
        while (m := opening.search(text, pos)) is not None:
            outside.append(text[pos : m.start()])
            json_end = _json_end(text, m.end())
            end = closing.search(text, json_end or m.end())
            nxt = opening.search(text, json_end or m.end())
            if json_end is not None:
                between = text[json_end : end.start()] if end else ""
                pieces.append(text[m.end() : json_end])
                pos = end.end() if end and not between.strip(" \n`") else json_end
                if end is None and any(c.startswith(text[json_end:].strip()) for c in CLOSINGS):
                    pos = len(text)  # the text stopped inside the closing tag (out of tokens)
            elif end and (nxt is None or end.start() < nxt.start()):
                pieces.append(text[m.end() : end.start()])
                pos = end.end()
            else:
                stop = nxt.start() if nxt else len(text)
                pieces.append(text[m.end() : stop])
                pos = stop
        outside.append(text[pos:])
        return "".join(outside).strip(), pieces
    return None


def _json_end(text: str, start: int) -> int | None:
    """Where the JSON value that starts at `start` (after spaces and a code fence) ends, or None."""
    m = re.compile(r"\s*(?:```[ \t]*(?:json|JSON)?[ \t]*\n?)?\s*").match(text, start)
    i = m.end() if m else start
    if i >= len(text) or text[i] not in "{[":
        return None
    try:
        return json.JSONDecoder().raw_decode(text, i)[1]
    except json.JSONDecodeError:
        return None


def _calls_in(piece: str, known: Mapping[str, Tool], must: bool) -> list[ToolCall]:
    """Calls in a piece of text that should hold JSON. With `must`, text that holds no call is an error."""
    fenced = FENCE.search(piece)
    body = fenced.group(1) if fenced else piece
    value, problem = _first_json(body)
    if value is None:
        python = _python_calls(body.strip(), known)
        if python or not must:
            return python
        return [
            ToolCall("", {}, error=f"the tool call is not valid JSON ({problem}): {_snip(body)}", raw=body)
        ]
    calls = list(_shapes(value, known))
    if not calls and must:
        return [ToolCall("", {}, error=_not_a_call(value), raw=body)]
    return calls


def _first_json(text: str) -> tuple[Any, str]:
    """The first JSON object or array in `text` (ignoring what follows it), or (None, why not)."""
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch in "{["]
    problem = "no JSON object found"
    for i in starts[:8]:
        try:
            return decoder.raw_decode(text, i)[0], ""
        except json.JSONDecodeError as e:
            problem = problem if i != starts[0] else f"{e.msg} at character {e.pos - i + 1}"
    return None, problem


def _bare_json(text: str, known: Mapping[str, Tool]) -> ParsedReply | None:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[{\[]", text):
        try:
            value, end = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        calls = list(_shapes(value, known))
        if calls:
            return ParsedReply((text[: m.start()] + text[end:]).strip(), calls)
    return None


def _shapes(value: Any, known: Mapping[str, Tool]) -> Iterator[ToolCall]:
    """The calls a decoded JSON value holds, in the shapes listed in the module docstring."""
    if isinstance(value, list):
        for item in value:
            yield from _shapes(item, known)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("tool_calls"), list):
        yield from _shapes(value["tool_calls"], known)
        return
    inner = value.get("function")
    if isinstance(inner, dict) and "name" in inner:
        yield _checked(
            inner.get("name"), inner.get("arguments", inner.get("parameters", {})), known, value.get("id")
        )
        return
    name = value.get("name", inner if isinstance(inner, str) else None)
    if isinstance(name, str) and ("arguments" in value or "parameters" in value or set(value) <= {"name"}):
        yield _checked(name, value.get("arguments", value.get("parameters", {})), known, None)


def _checked(name: Any, arguments: Any, known: Mapping[str, Tool], call_id: Any) -> ToolCall:
    raw = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, default=str)
    call = ToolCall(str(name), {}, raw=raw)
    if isinstance(call_id, str) and call_id:
        call.id = call_id
    if isinstance(arguments, str):  # OpenAI sends arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            call.error = f"the arguments of {name} are not valid JSON ({e.msg}): {_snip(arguments)}"
            return call
    if not isinstance(arguments, dict):
        call.error = f"the arguments of {name} must be a JSON object, got {_snip(json.dumps(arguments))}"
        return call
    call.arguments = arguments
    if not known:
        return call
    if call.name not in known:
        call.error = f"unknown tool {call.name!r}; the tools are: {', '.join(known)}"
        return call
    problems = check_arguments(call.name, arguments, known[call.name].parameters)
    if problems:
        call.error = f"{call.name}: " + "; ".join(problems)
    return call


def _python_calls(text: str, known: Mapping[str, Tool]) -> list[ToolCall]:
    """`f(a=1)` or `[f(a=1), g(b="x")]` with literal arguments, for functions that are known tools."""
    if not known or "(" not in text or len(text) > 20_000:
        return []
    try:
        tree = ast.parse(text.strip().rstrip(";"), mode="eval").body
    except SyntaxError:
        return []
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return []
        name = ast.unparse(node.func)
        if name not in known:
            return []
        try:
            arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except (ValueError, SyntaxError, TypeError):
            return []
        calls.append(_checked(name, arguments, known, None))
    return calls


def _not_a_call(value: Any) -> str:
    return f'the tool call must be {{"name": ..., "arguments": {{...}}}}, got {_snip(json.dumps(value))}'


def _snip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
