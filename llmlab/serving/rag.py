"""Chat with your documents over the API (llmlab extra): `"retrieval": true` on a chat request answers the
last user message from the server's `--store`, with the supporting sources in the response (`sources`: the
passages the answer's sentences are attributed to; `context`: every passage the model was given).

    last user message -> retrieve (engine thread) -> grounded prompt within the budget (llmlab.rag.answer)
      -> generated in the running batch like any request (streamed or not)
      -> citations checked, sentences attributed to passages (engine thread) -> "sources": [...]

The steps are llmlab.rag.answer's own (`Answerer.retrieve`, `build_prompt`, `finish_answer`), so an answer
here equals `llmlab ask`'s for the same store, model and settings; only the generation goes through the
server's batch. Decoding follows the answer defaults (greedy, 64 tokens, one paragraph) for what the request
does not set. Retrieval and attribution embed text, so they run on the engine thread between decode steps
(one thread owns the cores, and the store's connection is used from one thread).
Tests: tests/serving/test_serve_openai_client.py::test_retrieval_returns_context_and_sources, tests/serving/test_serve_browser.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from llmlab.prompting.grounded import NOT_FOUND
from llmlab.rag.answer import ANSWER_DEFAULTS, AnswerConfig, Answerer
from llmlab.rag.grounded_answer import build_prompt, finish_answer
from llmlab.serving.api import DONE, Job, chat_head, generation_configs, http_error, sse
from llmlab.serving.bodies import ChatRequest
from llmlab.serving.http import HTTPError, Response, StreamResponse

if TYPE_CHECKING:
    from llmlab.serving.app import Server


def _question(req: ChatRequest) -> str:
    users = [m["content"] for m in req.messages if m["role"] == "user" and m["content"].strip()]
    if not users:
        raise HTTPError(400, "retrieval answers the last user message; send one", param="messages")
    return str(users[-1])


async def retrieval_chat(server: Server, req: ChatRequest) -> Response | StreamResponse:
    if server.store is None:
        raise HTTPError(
            400, "this server has no document store; start it with --store NAME", param="retrieval"
        )
    if req.sampling.n != 1 or req.tools:
        raise HTTPError(400, "retrieval answers take n = 1 and no tools", param="retrieval")
    assert req.retrieval is not None
    question = _question(req)
    max_tokens = req.sampling.max_tokens or ANSWER_DEFAULTS["max_new_tokens"]
    config = AnswerConfig(chunks=req.retrieval.chunks, mode=req.retrieval.mode, prompt=req.retrieval.prompt)
    answerer = Answerer(server.store, server.engine, config)
    budget = min(config.max_prompt_tokens, server.engine.context_length - max_tokens)
    try:
        hits = await server.scheduler.run(lambda: answerer.retrieve(question))
        prompt = build_prompt(question, hits, server.engine.tokenizer, budget, config.prompt)
    except Exception as e:
        raise http_error(e) from e
    configs = generation_configs(req.sampling, max_tokens, 1, ANSWER_DEFAULTS)
    job = Job(server, server.engine.encode(prompt.text), configs) if prompt.hits else None
    if job is not None:
        job.submit()
    head = chat_head(server, req.model)

    async def finish(text: str) -> dict[str, Any]:
        store = server.store
        assert store is not None
        try:
            answer = await server.scheduler.run(
                lambda: finish_answer(
                    question, text, prompt, store.embedder.embed, config.min_support, question
                )
            )
        except Exception as e:
            raise http_error(e) from e
        found = answer.to_dict()
        return {"sources": found["sources"], "context": found["context"]}

    if req.stream:
        return StreamResponse(
            _stream(job, head, finish, req.include_usage), on_close=job.cancel if job else None
        )
    text, reason = NOT_FOUND, "stop"
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if job is not None:
        (choice,) = await job.run()
        text, reason, usage = choice.text.strip(), choice.finish or "stop", job.usage()
    message = {"role": "assistant", "content": text}
    body = {**head, "object": "chat.completion", "usage": usage, **await finish(text),
            "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}]}  # fmt: skip
    return Response.json(body)


async def _stream(
    job: Job | None, head: dict[str, Any], finish: Any, include_usage: bool
) -> AsyncIterator[bytes]:
    chunk = {**head, "object": "chat.completion.chunk"}
    yield sse(
        {
            **chunk,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    )
    text, reason = NOT_FOUND, "stop"
    try:
        if job is None:
            yield sse(
                {**chunk, "choices": [{"index": 0, "delta": {"content": NOT_FOUND}, "finish_reason": None}]}
            )
        else:
            async for step in job.events():
                for _, event in step:
                    if event.text:
                        delta = {"content": event.text}
                        yield sse({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            text, reason = job.choices[0].text, job.choices[0].finish or "stop"
        found = await finish(text)
    except HTTPError as e:
        yield sse(e.body())
        yield DONE
        return
    finally:
        if job is not None:
            job.cancel()
    last = {**chunk, **found, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    yield sse(last)
    if include_usage and job is not None:
        yield sse({**chunk, "choices": [], "usage": job.usage()})
    yield DONE
