"""Tool calls over the API: `tools` and `tool_choice` in, `tool_calls` out.

Two implementations, chosen once per server (`tool_calling()`):

    agents (llmlab.agents installed; the default): each reply is `llmlab.agents.caller.ToolCaller.reply`,
        the same path as `llmlab agent run`: the tools listed compactly with worked examples, the tool
        chosen by channel scores, argument values copied from the conversation (copy_arguments: on for
        models under a billion parameters), optional parameters as stated, the call decoded under the JSON
        schema automaton; under tool_choice auto, whether to call is decided by channel scores too, until
        tool results come back (AgentsToolCalling.reply). It runs on the engine thread (tool_chat.py), so
        the reply comes whole.
    agents-grammar (a server with a prompt-tuning adapter, whose virtual tokens only the batch adds): the
        automaton of llmlab.agents as the allowed_tokens hook in the batch, its tolerant parser after.
    builtin (fallback): the server's own small grammar (tool_grammar.py) as the engine's allowed_tokens
        hook inside the running batch:
          tools -> a system message listing them (hermes format: <tools>...</tools>, calls in <tool_call>
          tags) -> the chat template -> decoding with the constraint -> the reply parsed: text outside the
          tags is `content`, each call is a `tool_calls` entry

tool_choice: "none" (no tools in the prompt, no calls), "auto" (free text or a call), "required" and a
named function (the reply is a call; named: that function only). Earlier assistant `tool_calls` are written
back into the prompt in the same tags, and `tool` messages as tool results, so any chat template renders a
multi-turn tool conversation. Both honour the same contract, which tests/serving/test_serve_openai_client.py
and test_serve_tool_calls.py check through the official openai client: with tool_choice required, every call
names a tool and its arguments validate.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmlab.generation.config import GenerationConfig
from llmlab.generation.rows import AllowedTokens
from llmlab.prompting.chat import render_chat

SYSTEM = (
    "You can call functions. Their signatures are inside <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call one, reply with a JSON object with its name and arguments inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{{"name": <function name>, "arguments": <arguments object>}}\n</tool_call>'
)


class GrammarToolCalling(Protocol):
    """Builds the decoding constraint for a request's tools, and finds the calls in the reply."""

    name: str

    def constraint(
        self, engine: Any, tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool, max_tokens: int
    ) -> AllowedTokens | None: ...

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        """(content, calls as {"name", "arguments": dict}) — only calls that name a tool and validate."""
        ...


@dataclass
class ToolReply:
    """One assistant reply from a caller: its text outside the calls, the valid calls ({"name",
    "arguments": dict}) and the tokens it read and wrote."""

    content: str
    calls: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    finish: str
    """OpenAI's finish_reason: tool_calls, length (the text used the whole budget) or stop."""


def logits_width(engine: Any) -> int:
    head = engine.model.get_output_embeddings() if hasattr(engine.model, "get_output_embeddings") else None
    return int(head.weight.shape[0]) if head is not None else int(engine.model.config.vocab_size)


class BuiltinToolCalling:
    """tool_grammar.py: flat parameter objects, one call per reply, decoded in the running batch."""

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


class AgentsGrammarToolCalling:
    """llmlab.agents' JSON-schema automaton and tolerant parser inside the running batch: for a server whose
    prompts carry a prompt-tuning adapter's virtual tokens, which the caller's scoring passes do not."""

    name = "agents-grammar"

    def constraint(
        self, engine: Any, tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool, max_tokens: int
    ) -> AllowedTokens | None:
        constrain = importlib.import_module("llmlab.agents.json_constraint")
        hook: AllowedTokens | None = constrain.tool_call_constraint(
            engine.tokenizer, list(tools), mode, call_format="hermes", parallel=parallel, max_tokens=max_tokens,
            vocab_size=logits_width(engine), eos_ids=sorted(engine.eos_ids),
        )  # fmt: skip
        return hook

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        parsing = importlib.import_module("llmlab.agents.parsing")
        reply = parsing.parse_tool_calls(text, list(tools))
        return reply.content, [{"name": c.name, "arguments": c.arguments} for c in reply.valid_calls]


class AgentsToolCalling:
    """llmlab.agents' ToolCaller: the reply `llmlab agent run` would write, with its default CallerConfig
    (see the module docstring). Not thread-safe: call it on the engine thread."""

    name = "agents"

    def reply(
        self,
        engine: Any,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        tool_choice: Any,
        parallel: bool,
        generation: GenerationConfig,
    ) -> ToolReply:
        """One reply to `messages` under OpenAI's `tool_choice` ("auto", "required" or a named function;
        "none" never comes here); `generation` decodes it (its max_new_tokens bounds the text and each call).

        Under "auto", a request gets a call when some tool explains it better than answering without a tool
        does (abstain="channel": a small model never starts a call by itself), and a reply after tool
        results is the model's own (abstain="model": text, unless it starts another call), so the
        call-result-answer loop of a client ends with an answer."""
        caller = importlib.import_module("llmlab.agents.caller")
        budget = generation.max_new_tokens
        answering = bool(messages) and messages[-1].get("role") == "tool"  # the results are in: answer
        config = caller.CallerConfig(
            parallel=parallel,
            max_text_tokens=budget,
            max_call_tokens=budget,
            abstain="model" if answering else "channel",
        )
        reply = caller.ToolCaller(engine, list(tools), config, generation).reply(messages, tool_choice)
        calls = [{"name": c.name, "arguments": c.arguments} for c in reply.calls if c.error is None]
        finish = "tool_calls" if calls else "length" if reply.completion_tokens >= budget else "stop"
        return ToolReply(reply.content, calls, reply.prompt_tokens, reply.completion_tokens, finish)


ToolCalling = GrammarToolCalling | AgentsToolCalling
"""A server's tool-call implementation: a grammar inside the batch, or a whole reply from a caller."""


def tool_calling(virtual_tokens: bool = False) -> ToolCalling:
    """llmlab.agents' caller when it is installed (its grammar in the batch when the prompts carry a
    prompt-tuning adapter's `virtual_tokens`), else the built-in grammar."""
    if importlib.util.find_spec("llmlab.agents.caller") is None:
        return BuiltinToolCalling()
    return AgentsGrammarToolCalling() if virtual_tokens else AgentsToolCalling()


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
