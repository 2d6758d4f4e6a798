"""The OpenAI-compatible routes: chat completions (with tools and, as an llmlab extra, retrieval with sources),
completions and embeddings, each streamed over server-sent events when asked.

Response shapes follow the OpenAI API reference: `chat.completion` / `chat.completion.chunk` /
`text_completion` objects, `usage` counts, `finish_reason` stop | length | tool_calls, a stream that ends with
`data: [DONE]`, and with `stream_options.include_usage` a last chunk whose `choices` is empty and that carries
`usage`. A retrieval answer adds `sources` (the passages that support it, with labels and snippets) to the
response, or to the stream's last chunk. Tests: tests/serving/test_serve_openai_client.py (the official client).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmlab.errors import ConfigError, LlmlabError, ModelError
from llmlab.generation.config import GenerationConfig
from llmlab.serving import bodies as rq
from llmlab.serving.http import HTTPError, Response, StreamResponse
from llmlab.serving.scheduler import Overloaded, Ticket
from llmlab.serving.tools import AgentsToolCalling, GrammarToolCalling, openai_calls, render_prompt, resolve

if TYPE_CHECKING:
    from llmlab.serving.app import Server

TRIGGER = "<tool_call>"


def http_error(e: BaseException) -> HTTPError:
    """A library error as the HTTP error a client should see."""
    if isinstance(e, HTTPError):
        return e
    if isinstance(e, Overloaded):
        return HTTPError(503, str(e), "server_error", code="overloaded", headers={"Retry-After": "1"})
    if isinstance(e, ConfigError | ModelError):
        return HTTPError(400, str(e))
    if isinstance(e, LlmlabError):
        return HTTPError(400, str(e))
    return HTTPError(500, f"internal error: {str(e)[:200] or type(e).__name__}", "server_error")


def generation_configs(
    s: rq.Sampling, max_tokens: int, n: int, defaults: dict[str, Any] | None = None
) -> list[GenerationConfig]:
    """One config per choice; choice i samples with seed + i (as `Engine.generate` does for a batch)."""
    values: dict[str, Any] = dict(
        max_new_tokens=max_tokens,
        temperature=s.temperature,
        greedy=s.temperature == 0.0,
        top_k=s.top_k,
        top_p=s.top_p,
        min_p=s.min_p,
        repetition_penalty=s.repetition_penalty,
        stop=list(s.stop),
    )
    if defaults:  # a retrieval answer: its own defaults for what the client did not set
        given = {"temperature", "stop"} & s.given
        values |= {k: v for k, v in defaults.items() if k not in given and k != "max_new_tokens"}
        if "temperature" in given:
            values["greedy"] = s.temperature == 0.0
    return [GenerationConfig(**values, seed=None if s.seed is None else s.seed + i) for i in range(n)]


@dataclass
class Choice:
    text: str = ""
    tokens: int = 0
    finish: str | None = None


@dataclass
class Job:
    """What a request runs: its prompt, one config per choice, the constraint, and its ticket once queued."""

    server: Server
    ids: list[int]
    configs: list[GenerationConfig]
    hook: Any = None
    ticket: Ticket | None = None
    choices: list[Choice] = field(default_factory=list)

    def submit(self) -> Ticket:
        try:
            hooks = [self.hook] * len(self.configs)
            self.ticket = self.server.scheduler.submit(
                self.ids, self.configs, hooks, self.server.prefix_embeds
            )
        except Overloaded as e:
            raise http_error(e) from e
        self.choices = [Choice() for _ in self.configs]
        return self.ticket

    async def events(self) -> AsyncIterator[list[tuple[int, Any]]]:
        """Each step's events for this request; cancels the rows if the consumer stops early."""
        ticket = self.ticket or self.submit()
        try:
            while any(c.finish is None for c in self.choices):
                item = await ticket.queue.get()
                if isinstance(item, BaseException):
                    raise http_error(item)
                for index, event in item:
                    choice = self.choices[index]
                    choice.text += event.text
                    choice.tokens += event.token is not None
                    if event.finish_reason is not None:
                        choice.finish = event.finish_reason
                yield item
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the rows still running (a stream whose client went away)."""
        if self.ticket is not None and any(c.finish is None for c in self.choices):
            self.server.scheduler.cancel(self.ticket)

    async def run(self) -> list[Choice]:
        async for _ in self.events():
            pass
        return self.choices

    def usage(self) -> dict[str, int]:
        completion = sum(c.tokens for c in self.choices)
        return {
            "prompt_tokens": len(self.ids),
            "completion_tokens": completion,
            "total_tokens": len(self.ids) + completion,
        }


def request_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def chat_head(server: Server, model: str) -> dict[str, Any]:
    """The fields every chat response and chunk starts with: a new id, the time, the model, the fingerprint."""
    return {
        "id": request_id("chatcmpl"),
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": server.fingerprint,
    }


def sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"


# -- chat completions ---------------------------------------------------------------------------------------


async def chat_completions(server: Server, body: Any) -> Response | StreamResponse:
    req = rq.chat_request(body, server.config)
    server.check_model(req.model)
    if req.retrieval is not None:
        from llmlab.serving.rag import retrieval_chat

        return await retrieval_chat(server, req)
    tools, mode = resolve(req.tools, req.tool_choice)
    if mode != "none" and isinstance(server.tool_calling, AgentsToolCalling):
        from llmlab.serving.tool_chat import caller_chat

        return await caller_chat(server, req, server.tool_calling)
    ids = await server.encode(lambda tok: render_prompt(tok, req.messages, tools))
    max_tokens = server.budget(len(ids), req.sampling.max_tokens)
    hook = None
    if mode != "none":
        make = _grammar(server).constraint
        args = (server.engine, tools, mode, req.parallel_tool_calls, max_tokens)
        try:
            hook = await asyncio.to_thread(make, *args)
        except LlmlabError as e:
            raise http_error(e) from e
    job = Job(server, ids, generation_configs(req.sampling, max_tokens, req.sampling.n), hook)
    job.submit()
    head = chat_head(server, req.model)
    rid = head["id"]
    if req.stream:
        chunks = _chat_stream(server, job, head, tools if mode != "none" else [], req.include_usage)
        return StreamResponse(chunks, on_close=job.cancel)
    choices = await job.run()
    out = []
    for i, choice in enumerate(choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.text}
        finish = choice.finish
        if mode != "none":
            content, calls = _grammar(server).parse(choice.text, tools)
            if calls:
                message = {
                    "role": "assistant",
                    "content": content or None,
                    "tool_calls": openai_calls(calls, f"{rid}{i}"),
                }
                finish = "tool_calls"
        out.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
    return Response.json({**head, "object": "chat.completion", "choices": out, "usage": job.usage()})


def _grammar(server: Server) -> GrammarToolCalling:
    """The server's grammar implementation (an agents caller answers in tool_chat.py and never gets here)."""
    calling = server.tool_calling
    assert not isinstance(calling, AgentsToolCalling)
    return calling


def _held_back(text: str) -> int:
    """Length of the end of `text` that could be the start of a tool-call tag (not shown yet)."""
    for k in range(min(len(TRIGGER) - 1, len(text)), 0, -1):
        if TRIGGER.startswith(text[-k:]):
            return k
    return 0


def _last_delta(
    server: Server, choice: Choice, tools: list[dict[str, Any]], call_id: str, index: int
) -> dict[str, Any]:
    """A choice's last stream delta: its tool calls (parsed from the whole text), and its finish reason."""
    delta: dict[str, Any] = {}
    finish = choice.finish
    if tools:
        _, calls = _grammar(server).parse(choice.text, tools)
        if calls:
            finish = "tool_calls"
            delta["tool_calls"] = [
                {"index": k, **call} for k, call in enumerate(openai_calls(calls, call_id))
            ]
    return {"index": index, "delta": delta, "finish_reason": finish}


async def _chat_stream(
    server: Server, job: Job, head: dict[str, Any], tools: list[dict[str, Any]], include_usage: bool
) -> AsyncIterator[bytes]:
    chunk = {**head, "object": "chat.completion.chunk"}
    n = len(job.configs)
    shown = [0] * n  # characters of each choice's text already sent as content
    calling = [False] * n  # a tool-call tag has started: the rest is held for parsing
    for i in range(n):
        yield sse(
            {
                **chunk,
                "choices": [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
    try:
        async for step in job.events():
            for index, event in step:
                choice = job.choices[index]
                text = choice.text
                if not calling[index]:
                    end = len(text)
                    if tools and TRIGGER in text[shown[index] :]:
                        calling[index] = True
                        end = text.index(TRIGGER, shown[index])
                    elif tools and event.finish_reason is None:
                        end -= _held_back(text)
                    if end > shown[index]:
                        piece = {"content": text[shown[index] : end]}
                        shown[index] = end
                        yield sse(
                            {**chunk, "choices": [{"index": index, "delta": piece, "finish_reason": None}]}
                        )
                if event.finish_reason is not None:
                    yield sse(
                        {
                            **chunk,
                            "choices": [_last_delta(server, choice, tools, f"{head['id']}{index}", index)],
                        }
                    )
    except HTTPError as e:
        yield sse(e.body())
        yield DONE
        return
    finally:
        job.cancel()
    if include_usage:
        yield sse({**chunk, "choices": [], "usage": job.usage()})
    yield DONE


# -- completions --------------------------------------------------------------------------------------------


async def completions(server: Server, body: Any) -> Response | StreamResponse:
    req = rq.completion_request(body, server.config)
    server.check_model(req.model)
    jobs = []
    for prompt in req.prompts:
        ids = await server.encode(lambda tok, p=prompt: p)  # type: ignore[misc]
        max_tokens = server.budget(len(ids), req.sampling.max_tokens)
        jobs.append(Job(server, ids, generation_configs(req.sampling, max_tokens, req.sampling.n)))
    for job in jobs:
        job.submit()
    rid, created = request_id("cmpl"), int(time.time())
    head = {"id": rid, "object": "text_completion", "created": created, "model": req.model}
    if req.stream:
        return StreamResponse(_completion_stream(jobs[0], head, req.include_usage), on_close=jobs[0].cancel)
    try:
        results = await asyncio.gather(*(job.run() for job in jobs))
    finally:
        for job in jobs:
            job.cancel()
    choices = [
        {"index": p * req.sampling.n + i, "text": c.text, "finish_reason": c.finish, "logprobs": None}
        for p, result in enumerate(results)
        for i, c in enumerate(result)
    ]
    usage = _sum_usage(job.usage() for job in jobs)
    return Response.json({**head, "choices": choices, "usage": usage})


def _sum_usage(usages: Any) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for u in usages:
        for k in total:
            total[k] += u[k]
    return total


async def _completion_stream(job: Job, head: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    try:
        async for step in job.events():
            for index, event in step:
                if event.text or event.finish_reason is not None:
                    choice = {
                        "index": index,
                        "text": event.text,
                        "finish_reason": event.finish_reason,
                        "logprobs": None,
                    }
                    yield sse({**head, "choices": [choice]})
    except HTTPError as e:
        yield sse(e.body())
        yield DONE
        return
    finally:
        job.cancel()
    if include_usage:
        yield sse({**head, "choices": [], "usage": job.usage()})
    yield DONE


# -- embeddings ---------------------------------------------------------------------------------------------


async def embeddings(server: Server, body: Any) -> Response:
    req = rq.embedding_request(body, server.config)
    embedder = await server.embedder_for(req.model)
    dims = body.get("dimensions") if isinstance(body, dict) else None
    if dims is not None and dims != embedder.dim:
        raise HTTPError(
            400, f"'dimensions' must be {embedder.dim} for {req.model}, got {dims}", param="dimensions"
        )

    def run() -> tuple[Any, int]:
        vectors = embedder.embed(req.inputs)
        tokens = sum(_count(embedder, t) for t in req.inputs)
        return vectors, tokens

    try:
        vectors, tokens = await server.scheduler.run(run)
    except Exception as e:
        raise http_error(e) from e
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, req.base64)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Response.json({"object": "list", "data": data, "model": req.model, "usage": usage})


def _count(embedder: Any, text: str) -> int:
    count = getattr(embedder, "count_tokens", None)
    return int(count(text)) if count else len(embedder.tokenizer(text)["input_ids"])


def _encode_vector(vector: Any, as_base64: bool) -> Any:
    import numpy as np

    values = np.asarray(vector, dtype="<f4")
    if as_base64:
        return base64.b64encode(values.tobytes()).decode("ascii")
    return [float(x) for x in values]


def model_list(ids: Sequence[tuple[str, str]], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": created, "owned_by": owner} for i, owner in ids],
    }
