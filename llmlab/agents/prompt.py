"""Prompts for tool use: the tools in the system message, worked examples, and a conversation with tool calls
and tool results rendered through the model's chat template.

Chat templates that define tools (they use the `tools` variable: Qwen 2.5, Llama 3.1, SmolLM3, Hermes) get the
OpenAI tool list and OpenAI-shaped messages directly. Others (SmolLM2's plain ChatML) get the Hermes
convention written out: the tools listed in the system message, each call as `<tool_call>\\n{json}\\n
</tool_call>` in the assistant's text, each result in a `tool` message.

The listing is compact by default, one line per tool (`- name(arg: type, opt?: type): description`): a
135M model reads it better than JSON schemas and it costs a third of the tokens (measured on the project's
tasks, bench/agents.py). Worked examples come from each tool's `examples` (a request and the arguments it
should get) and are shown as earlier turns of the conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmlab.agents.json_constraint import FORMATS, CallFormat
from llmlab.agents.tools import Tool, as_tool

Message = dict[str, Any]
LISTINGS = ("compact", "json")
INSTRUCTIONS = (
    "You can call tools to help with the user's request. Call one when it helps; when you know the answer, "
    "reply with the answer."
)


def supports_tools(tokenizer: Any) -> bool:
    """True when the chat template renders a `tools` list itself."""
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "tools" in template


def signature(t: Tool) -> str:
    """`- name(arg: type, optional?: type): description` for the compact listing."""
    props: Mapping[str, Any] = t.parameters.get("properties", {})
    required = set(t.parameters.get("required", ()))
    args = ", ".join(f"{k}{'' if k in required else '?'}: {_type_name(v)}" for k, v in props.items())
    return f"- {t.name}({args}): {t.description}"


def _type_name(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def system_prompt(
    tools: Sequence[Tool],
    fmt: CallFormat = FORMATS["hermes"],
    listing: str = "compact",
    instructions: str = "",
) -> str:
    """The system message that lists the tools and says how to call them."""
    if listing == "json":
        body = (
            "<tools>\n" + "\n".join(json.dumps(t.schema(), ensure_ascii=False) for t in tools) + "\n</tools>"
        )
    else:
        body = "\n".join(signature(t) for t in tools)
    how = (
        f"To call a tool, write:\n{fmt.open}"
        f'{{"name": <tool name>, "{fmt.arguments_key}": <the arguments as a JSON object>}}{fmt.close}'
    )
    return f"{instructions or INSTRUCTIONS}\n\nTools:\n{body}\n\n{how}"


def call_text(name: str, arguments: Mapping[str, Any], fmt: CallFormat = FORMATS["hermes"]) -> str:
    """One call as the model writes it."""
    call = json.dumps({"name": name, fmt.arguments_key: arguments}, ensure_ascii=False)
    return f"{fmt.open}{call}{fmt.close}"


def example_messages(
    tools: Sequence[Tool], limit: int = 3, fmt: CallFormat = FORMATS["hermes"]
) -> list[Message]:
    """Worked examples as earlier turns: a request, the call, the tool's result, the answer."""
    out: list[Message] = []
    for t in tools:
        for example in t.examples[:1]:
            out.append({"role": "user", "content": example.request})
            out.append({"role": "assistant", "content": call_text(t.name, example.arguments, fmt)})
            if example.result is not None and example.answer is not None:
                out.append({"role": "tool", "content": example.result})
                out.append({"role": "assistant", "content": example.answer})
        if len(out) >= 4 * limit:
            break
    return out


def to_plain_messages(
    messages: Sequence[Mapping[str, Any]], fmt: CallFormat = FORMATS["hermes"]
) -> list[Message]:
    """OpenAI messages (assistant `tool_calls`, `tool` results) as plain role/content text messages."""
    out: list[Message] = []
    for m in messages:
        content = m.get("content") or ""
        if isinstance(content, list):  # OpenAI content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        calls = m.get("tool_calls") or []
        if m.get("role") == "assistant" and calls:
            texts = []
            for call in calls:
                fn = call.get("function", call)
                arguments = fn.get("arguments", {})
                if isinstance(arguments, str):
                    try:
                        arguments = json.loads(arguments or "{}")
                    except json.JSONDecodeError:
                        arguments = {"_unparsed": arguments}
                texts.append(call_text(str(fn.get("name")), arguments, fmt))
            content = (content + "\n" if content else "") + fmt.separator.join(texts)
        out.append({"role": str(m.get("role")), "content": str(content)})
    return out


def render(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Tool | Any],
    *,
    fmt: CallFormat = FORMATS["hermes"],
    listing: str = "compact",
    instructions: str = "",
    examples: bool = True,
    native: bool | None = None,
) -> str:
    """The prompt text for a conversation with tools, ending where the assistant's reply begins.

    Args:
        messages: OpenAI-style messages; a leading system message is kept before the tool listing.
        tools: Tools, typed functions or OpenAI tool dicts.
        native: use the template's own tool support (default: when it has one).
    """
    from llmlab.prompting.chat import render_chat

    tools = [as_tool(t) for t in tools]
    use_native = supports_tools(tokenizer) if native is None else native
    if use_native and tools:
        return str(
            tokenizer.apply_chat_template(
                [dict(m) for m in messages], tools=[t.schema() for t in tools], add_generation_prompt=True,
                tokenize=False,
            )
        )  # fmt: skip
    plain = to_plain_messages(messages, fmt)
    head = ""
    if plain and plain[0]["role"] == "system":
        head, plain = plain[0]["content"] + "\n\n", plain[1:]
    system = head + system_prompt(tools, fmt, listing, instructions) if tools else head.strip()
    shots = example_messages(tools, fmt=fmt) if examples and tools else []
    convo = ([{"role": "system", "content": system}] if system else []) + shots + plain
    return render_chat(tokenizer, convo)
