"""Chat completions with tools through llmlab.agents' caller (tools.py's AgentsToolCalling).

    request (tools, tool_choice auto | required | a named function, parallel_tool_calls, n, seed, ...)
      -> for each choice: ToolCaller.reply on the engine thread, with that choice's sampling settings
      -> {"content", "tool_calls"} and finish_reason "tool_calls" when it called, else its text and "stop"
         (or "length" when the text used the whole max_tokens)

The caller scores tools and candidate values and decodes each call under the grammar with several engine
passes, so it cannot run inside the running batch: each choice runs whole between two decode steps (other
requests wait for it) and a stream sends it as a few chunks once it is done: the role, the text (if any),
then the calls with the finish reason, as OpenAI's stream does, so clients that read deltas work unchanged.
tool_choice "none" never comes here (api.py generates a plain reply in the batch).
Tests: tests/serving/test_serve_tool_calls.py (the official client, tiny model; SmolLM2 on project tasks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from llmlab.serving.api import DONE, chat_head, generation_configs, http_error, sse
from llmlab.serving.bodies import ChatRequest
from llmlab.serving.http import Response, StreamResponse
from llmlab.serving.tools import AgentsToolCalling, ToolReply, openai_calls, render_prompt

if TYPE_CHECKING:
    from llmlab.serving.app import Server


async def caller_chat(
    server: Server, req: ChatRequest, caller: AgentsToolCalling
) -> Response | StreamResponse:
    ids = await server.encode(lambda tok: render_prompt(tok, req.messages, req.tools))
    max_tokens = server.budget(len(ids), req.sampling.max_tokens)
    replies: list[ToolReply] = []
    for config in generation_configs(req.sampling, max_tokens, req.sampling.n):
        try:
            replies.append(
                await server.scheduler.run(
                    lambda c=config: caller.reply(  # type: ignore[misc]
                        server.engine, req.messages, req.tools, req.tool_choice, req.parallel_tool_calls, c
                    )
                )
            )
        except Exception as e:
            raise http_error(e) from e
    head = chat_head(server, req.model)
    rid = head["id"]
    prompt = max(r.prompt_tokens for r in replies)
    completion = sum(r.completion_tokens for r in replies)
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if req.stream:
        return StreamResponse(_stream(replies, head, rid, usage if req.include_usage else None))
    choices = []
    for i, r in enumerate(replies):
        message: dict[str, Any] = {"role": "assistant", "content": r.content}
        if r.calls:
            message = {
                "role": "assistant",
                "content": r.content or None,
                "tool_calls": openai_calls(r.calls, f"{rid}{i}"),
            }
        choices.append({"index": i, "message": message, "finish_reason": r.finish, "logprobs": None})
    return Response.json({**head, "object": "chat.completion", "choices": choices, "usage": usage})


async def _stream(
    replies: list[ToolReply], head: dict[str, Any], rid: str, usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    chunk = {**head, "object": "chat.completion.chunk"}

    def piece(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**chunk, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})

    for i, r in enumerate(replies):
        yield piece(i, {"role": "assistant", "content": ""})
        if r.content:
            yield piece(i, {"content": r.content})
        calls = [{"index": k, **call} for k, call in enumerate(openai_calls(r.calls, f"{rid}{i}"))]
        yield piece(i, {"tool_calls": calls} if calls else {}, r.finish)
    if usage is not None:
        yield sse({**chunk, "choices": [], "usage": usage})
    yield DONE
