"""OpenAI request bodies, checked field by field into typed requests (400 with the field named otherwise).

Follows the OpenAI API reference for /v1/chat/completions, /v1/completions and /v1/embeddings: the fields a
client may send, their types and ranges. Fields whose effect this server does not implement are refused
when they ask for something (`presence_penalty: 0.5`, `logit_bias: {...}`, `response_format: json_object`)
rather than silently ignored; bookkeeping fields (`user`, `metadata`, `store`, `service_tier`) are accepted.
An unknown field is a 400, as OpenAI answers. llmlab extras: `top_k`, `min_p`, `repetition_penalty`, and
`retrieval` (answer from the server's `--store`, sources returned).
Nothing in a body is evaluated: values are only type-checked and copied.
Tests: tests/serving/test_serve_security.py, tests/serving/test_serve_openai_client.py::test_bad_requests_get_openai_errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmlab.serving.config import ServeConfig
from llmlab.serving.http import HTTPError

IGNORED = {
    "user",
    "metadata",
    "store",
    "service_tier",
    "prediction",
    "modalities",
    "audio",
    "reasoning_effort",
}
"""Accepted and without effect here: who asked, storage and routing hints of OpenAI's own service."""


def bad(message: str, param: str | None = None) -> HTTPError:
    return HTTPError(400, message, param=param)


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), "null" if value is None else type(value).__name__)


def number(
    body: Mapping[str, Any], name: str, default: float, lo: float, hi: float, open_lo: bool = False
) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(f"'{name}' must be a number, got {_type_name(value)}", name)
    if value < lo or value > hi or (open_lo and value == lo):
        side = "(" if open_lo else "["
        raise bad(f"'{name}' must be in {side}{lo:g}, {hi:g}], got {value}", name)
    return float(value)


def integer(body: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"'{name}' must be an integer, got {_type_name(value)}", name)
    if not lo <= value <= hi:
        raise bad(f"'{name}' must be in [{lo}, {hi}], got {value}", name)
    return value


def boolean(body: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"'{name}' must be true or false, got {_type_name(value)}", name)
    return value


def string(body: Mapping[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise bad(f"'{name}' must be a non-empty string, got {_type_name(value)}", name)
    return value


def check_fields(body: Any, known: set[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad(f"the request body must be a JSON object, got {_type_name(body)}")
    unknown = sorted(set(body) - known - IGNORED)
    if unknown:
        raise bad(f"unrecognized request argument(s) for {what}: {', '.join(unknown)}", unknown[0])
    return body


@dataclass
class Sampling:
    """The decoding fields shared by chat and completions."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_tokens: int | None = None
    """None: as many as the limit and the context window allow."""
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    given: set[str] = field(default_factory=set)
    """Fields the client set (a retrieval answer keeps its own defaults for the others)."""


SAMPLING_FIELDS = {
    "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens", "max_completion_tokens",
    "stop", "seed", "n", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
}  # fmt: skip


def sampling(body: Mapping[str, Any], limits: ServeConfig) -> Sampling:
    for name in ("presence_penalty", "frequency_penalty"):
        if number(body, name, 0.0, -2.0, 2.0) != 0.0:
            raise bad(
                f"'{name}' is not supported by this server; leave it at 0 (try repetition_penalty)", name
            )
    if body.get("logit_bias"):
        raise bad("'logit_bias' is not supported by this server; leave it out", "logit_bias")
    if boolean(body, "logprobs") or body.get("top_logprobs"):
        raise bad("'logprobs' are not supported by this server yet; leave them out", "logprobs")
    max_tokens = integer(body, "max_completion_tokens", None, 1, limits.max_tokens)
    if max_tokens is None:
        max_tokens = integer(body, "max_tokens", None, 1, limits.max_tokens)
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        stops = list(stop)
    else:
        raise bad("'stop' must be a string or a list of up to 4 strings", "stop")
    if any(not s or len(s) > 256 for s in stops):
        raise bad("each 'stop' string must have 1 to 256 characters", "stop")
    return Sampling(
        temperature=number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=number(body, "top_p", 1.0, 0.0, 1.0, open_lo=True),
        top_k=integer(body, "top_k", 0, 0, 1 << 20) or 0,
        min_p=number(body, "min_p", 0.0, 0.0, 1.0),
        repetition_penalty=number(body, "repetition_penalty", 1.0, 0.0, 10.0, open_lo=True),
        max_tokens=max_tokens,
        stop=stops,
        seed=integer(body, "seed", None, -(1 << 63), (1 << 63) - 1),
        n=integer(body, "n", 1, 1, limits.max_n) or 1,
        given={k for k in SAMPLING_FIELDS if body.get(k) is not None},
    )


def stream_options(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = boolean(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
        raise bad("'stream_options' must be an object like {\"include_usage\": true}", "stream_options")
    return stream, boolean(options, "include_usage")


@dataclass
class Retrieval:
    """llmlab extra: answer from the server's store and return the sources."""

    chunks: int = 3
    mode: str = "hybrid"
    prompt: str = "few-shot"


def retrieval(body: Mapping[str, Any]) -> Retrieval | None:
    value = body.get("retrieval")
    if value is None or value is False:
        return None
    if value is True:
        return Retrieval()
    if not isinstance(value, dict) or set(value) - {"chunks", "mode", "prompt"}:
        raise bad("'retrieval' must be true or an object with chunks, mode and prompt", "retrieval")
    mode = value.get("mode", "hybrid")
    if mode not in ("hybrid", "dense", "bm25"):
        raise bad(f"'retrieval.mode' must be hybrid, dense or bm25, got {mode!r}", "retrieval")
    prompt = value.get("prompt", "few-shot")
    if prompt not in ("few-shot", "zero-shot"):
        raise bad(f"'retrieval.prompt' must be few-shot or zero-shot, got {prompt!r}", "retrieval")
    return Retrieval(integer(value, "chunks", 3, 1, 20) or 3, mode, prompt)


ROLES = {"system", "developer", "user", "assistant", "tool"}


def _content(message: Mapping[str, Any], index: int) -> str | None:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise bad(f"messages[{index}].content: only text parts are supported", "messages")
            texts.append(part["text"])
        return "".join(texts)
    raise bad(f"messages[{index}].content must be a string or a list of text parts", "messages")


def _tool_calls(message: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad(f"messages[{index}].tool_calls must be a list", "messages")
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(fn, dict)
            or not isinstance(fn.get("name"), str)
            or not isinstance(fn.get("arguments"), str)
        ):
            raise bad(f"messages[{index}].tool_calls: each needs function.name and function.arguments (strings)",
                      "messages")  # fmt: skip
        out.append({"id": str(call.get("id", "")), "name": fn["name"], "arguments": fn["arguments"]})
    return out


def messages(body: Mapping[str, Any], limits: ServeConfig) -> list[dict[str, Any]]:
    """Messages as {"role", "content": str, "tool_calls"?: [...]}; `developer` becomes `system`."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad('\'messages\' must be a non-empty list of {"role", "content"}', "messages")
    if len(raw) > limits.max_messages:
        raise bad(f"{len(raw)} messages, over the server's limit of {limits.max_messages}", "messages")
    out = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad(f"messages[{i}] must have a role among {', '.join(sorted(ROLES))}", "messages")
        role = "system" if message["role"] == "developer" else message["role"]
        content = _content(message, i)
        calls = _tool_calls(message, i) if role == "assistant" else []
        if content is None and not calls:
            raise bad(f"messages[{i}] has no content", "messages")
        out.append({"role": role, "content": content or "", "tool_calls": calls})
    return out


def tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """(tools as OpenAI function dicts, tool_choice)."""
    raw = body.get("tools") or []
    if not isinstance(raw, list) or len(raw) > 64:
        raise bad("'tools' must be a list of at most 64 functions", "tools")
    names = set()
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise bad(f'tools[{i}] must be {{"type": "function", "function": {{...}}}}', "tools")
        name = fn.get("name")
        if (
            not isinstance(name, str)
            or not name
            or len(name) > 64
            or not name.replace("_", "a").replace("-", "a").isalnum()
        ):
            raise bad(f"tools[{i}].function.name must be 1-64 letters, digits, _ or -", "tools")
        if name in names:
            raise bad(f"tools: the name {name!r} is used twice", "tools")
        names.add(name)
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise bad(f"tools[{i}].function.parameters must be a JSON Schema object", "tools")
    choice = body.get("tool_choice")
    if choice is None:
        choice = "auto" if raw else "none"
    if isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") != "function" or not isinstance(fn, dict) or fn.get("name") not in names:
            raise bad(f"'tool_choice' names no function among the tools ({', '.join(sorted(names)) or 'none'})",
                      "tool_choice")  # fmt: skip
    elif choice not in ("auto", "required", "none"):
        raise bad(f"'tool_choice' must be auto, required, none or a function, got {choice!r}", "tool_choice")
    elif choice != "none" and not raw:
        raise bad(f"'tool_choice' {choice!r} needs 'tools'", "tool_choice")
    return list(raw), choice


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "none"
    parallel_tool_calls: bool = True
    retrieval: Retrieval | None = None


CHAT_FIELDS = SAMPLING_FIELDS | {
    "model", "messages", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "retrieval", "functions", "function_call",
}  # fmt: skip


def chat_request(body: Any, limits: ServeConfig) -> ChatRequest:
    body = check_fields(body, CHAT_FIELDS, "chat completions")
    if body.get("functions") or body.get("function_call"):
        raise bad("'functions' is OpenAI's deprecated form; send 'tools' instead", "functions")
    fmt = body.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise bad('\'response_format\' other than {"type": "text"} is not supported yet', "response_format")
    stream, include_usage = stream_options(body)
    tool_list, choice = tools(body)
    return ChatRequest(
        model=string(body, "model"),
        messages=messages(body, limits),
        sampling=sampling(body, limits),
        stream=stream,
        include_usage=include_usage,
        tools=tool_list,
        tool_choice=choice,
        parallel_tool_calls=boolean(body, "parallel_tool_calls", True),
        retrieval=retrieval(body),
    )


@dataclass
class CompletionRequest:
    model: str
    prompts: list[str]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False


def completion_request(body: Any, limits: ServeConfig) -> CompletionRequest:
    body = check_fields(body, SAMPLING_FIELDS | {"model", "prompt", "stream", "stream_options", "echo", "suffix",
                                                 "best_of"}, "completions")  # fmt: skip
    if boolean(body, "echo") or body.get("suffix") or (body.get("best_of") or 1) != 1:
        raise bad("'echo', 'suffix' and 'best_of' are not supported by this server", "echo")
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise bad("'prompt' must be a string or a non-empty list of strings", "prompt")
    if len(prompts) > limits.max_inputs:
        raise bad(f"{len(prompts)} prompts, over the server's limit of {limits.max_inputs}", "prompt")
    stream, include_usage = stream_options(body)
    if stream and len(prompts) > 1:
        raise bad("streaming takes one prompt; send a string", "prompt")
    return CompletionRequest(string(body, "model"), prompts, sampling(body, limits), stream, include_usage)


@dataclass
class EmbeddingRequest:
    model: str
    inputs: list[str]
    base64: bool


def embedding_request(body: Any, limits: ServeConfig) -> EmbeddingRequest:
    body = check_fields(body, {"model", "input", "encoding_format", "dimensions"}, "embeddings")
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        raise bad(
            "'input' must be a non-empty string or a list of them (token arrays are not accepted)", "input"
        )
    if len(inputs) > limits.max_inputs:
        raise bad(f"{len(inputs)} inputs, over the server's limit of {limits.max_inputs}", "input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise bad(f"'encoding_format' must be float or base64, got {fmt!r}", "encoding_format")
    return EmbeddingRequest(string(body, "model"), inputs, fmt == "base64")
