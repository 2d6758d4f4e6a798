"""Tool calls over the API: `tools` and `tool_choice` in, `tool_calls` out, the call constrained while decoding.

    tools -> a system message listing them (hermes format: <tools>...</tools>, calls in <tool_call> tags)
          -> the chat template -> decoding with the constraint as the engine's allowed_tokens hook
          -> the reply parsed: text outside the tags is `content`, each call is a `tool_calls` entry
    tool_choice: "none" (no constraint, no calls), "auto" (free text or a call), "required" and a named
                 function (the reply is a call; named: that function only)

Earlier assistant `tool_calls` are written back into the prompt in the same tags, and `tool` messages as
<tool_response> user turns, so any chat template renders a multi-turn tool conversation.

Which implementation constrains and parses is a `ToolCalling`: `llmlab.agents` (issue 12: full JSON
Schema, parallel calls, tolerant parsing) when it is installed, else the server's own small grammar
(tool_grammar.py). Both honour the same contract, which tests/serving/test_serve_openai_client.py checks through
the official openai client: with tool_choice required, every call names a tool and its arguments validate.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llmlab.generation.rows import AllowedTokens
from llmlab.prompting.chat import render_chat

SYSTEM = (
    "You can call functions. Their signatures are inside <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call one, reply with a JSON object with its name and arguments inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{{"name": <function name>, "arguments": <arguments object>}}\n</tool_call>'
)


class ToolCalling(Protocol):
    """Builds the decoding constraint for a request's tools, and finds the calls in the reply."""

    name: str

    def constraint(
        self, engine: Any, tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool, max_tokens: int
    ) -> AllowedTokens | None: ...

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        """(content, calls as {"name", "arguments": dict}) — only calls that name a tool and validate."""
        ...


def logits_width(engine: Any) -> int:
    head = engine.model.get_output_embeddings() if hasattr(engine.model, "get_output_embeddings") else None
    return int(head.weight.shape[0]) if head is not None else int(engine.model.config.vocab_size)


class BuiltinToolCalling:
    """tool_grammar.py: flat parameter objects, one call per reply."""

    name = "builtin"

    def constraint(
        self, engine: Any, tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool, max_tokens: int
    ) -> AllowedTokens | None:
        from llmlab.serving.tool_grammar import ToolCallConstraint

        width = logits_width(engine)
        return ToolCallConstraint(engine.tokenizer, tools, mode, sorted(engine.eos_ids), width, max_tokens)

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        from llmlab.serving.tool_grammar import parse_calls

        return parse_calls(text, tools)


class AgentsToolCalling:
    """llmlab.agents: the JSON-schema automaton and the tolerant parser of issue 12."""

    name = "agents"

    def constraint(
        self, engine: Any, tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool, max_tokens: int
    ) -> AllowedTokens | None:
        constrain = importlib.import_module("llmlab.agents.json_constraint")
        hook: AllowedTokens | None = constrain.tool_call_constraint(
            engine.tokenizer,
            list(tools),
            mode,
            call_format="hermes",
            parallel=parallel,
            max_tokens=max_tokens,
            vocab_size=logits_width(engine),
            eos_ids=sorted(engine.eos_ids),
        )
        return hook

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        parsing = importlib.import_module("llmlab.agents.parsing")
        reply = parsing.parse_tool_calls(text, list(tools))
        return reply.content, [{"name": c.name, "arguments": c.arguments} for c in reply.valid_calls]


def tool_calling() -> ToolCalling:
    """llmlab.agents' implementation when it is installed, else the built-in one."""
    if importlib.util.find_spec("llmlab.agents.json_constraint") is not None:
        return AgentsToolCalling()
    return BuiltinToolCalling()


def resolve(tools: list[dict[str, Any]], tool_choice: Any) -> tuple[list[dict[str, Any]], str]:
    """(the tools the model may call, "none" | "auto" | "required") for a checked tool_choice."""
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        return [t for t in tools if t["function"]["name"] == name], "required"
    return (tools, tool_choice) if tool_choice != "none" else ([], "none")


def _call_text(call: Mapping[str, Any]) -> str:
    try:
        arguments = json.loads(call["arguments"])
    except ValueError:
        arguments = call["arguments"]
    body = json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def chat_messages(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """Messages as plain {"role", "content"} for any chat template: tools listed in the system message,
    earlier calls in <tool_call> tags, tool results as <tool_response> user turns."""
    out: list[dict[str, str]] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            parts = [m["content"]] if m["content"] else []
            out.append(
                {"role": "assistant", "content": "\n".join(parts + [_call_text(c) for c in m["tool_calls"]])}
            )
        elif m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if tools:
        listing = SYSTEM.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + listing}
        else:
            out.insert(0, {"role": "system", "content": listing})
    return out


def render_prompt(
    tokenizer: Any, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> str:
    """The prompt text for a chat request (the chat template's rendering, ending where the reply starts)."""
    return render_chat(tokenizer, chat_messages(messages, tools))


def openai_calls(calls: Sequence[Mapping[str, Any]], request_id: str) -> list[dict[str, Any]]:
    """Calls in OpenAI's message shape: {"id", "type": "function", "function": {"name", "arguments": str}}."""
    return [
        {
            "id": f"call_{request_id[-12:]}_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
        }
        for i, c in enumerate(calls)
    ]
