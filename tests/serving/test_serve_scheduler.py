"""The engine thread: requests that arrive while others decode join the running batch (one forward for all)
and get the tokens they get alone; a failing step ends the requests in flight with the error and the next
request is served; `llmlab serve` runs as a process and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from llmlab.generation import GenerationConfig
from llmlab.serving.scheduler import Scheduler


def test_requests_join_between_steps_and_equal_runs_alone(tiny_engine):
    prompts = [tiny_engine.encode(p) for p in ("The capital of France is", "Hello", "def add(a, b):")]
    configs = [
        GenerationConfig(max_new_tokens=40, seed=i, temperature=0.8, top_p=1.0, ignore_eos=True)
        for i in range(3)
    ]
    alone = [tiny_engine.generate([p], c)[0].token_ids for p, c in zip(prompts, configs, strict=True)]
    widths: list[int] = []
    step = tiny_engine.backend.step
    tiny_engine.backend.step = lambda state, tokens: (widths.append(tokens.shape[0]), step(state, tokens))[1]

    async def run() -> list[list[int]]:
        scheduler = Scheduler(tiny_engine, max_batch=4)
        scheduler.start()
        tickets, first = [], []
        for prompt, config in zip(prompts, configs, strict=True):
            tickets.append(scheduler.submit(prompt, [config]))
            first.append(await tickets[-1].queue.get())  # the next request arrives while this one decodes
        out = []
        for ticket, step in zip(tickets, first, strict=True):
            assert not isinstance(step, BaseException)
            tokens: list[int] = [event.token for _, event in step]
            finished = False
            while not finished:
                item = await ticket.queue.get()
                assert not isinstance(item, BaseException)
                for _, event in item:
                    tokens.append(event.token)
                    finished = event.finish_reason is not None
            out.append(tokens)
        scheduler.stop()
        return out

    try:
        got = asyncio.run(run())
    finally:
        tiny_engine.backend.step = step
    assert got == alone
    assert max(widths) >= 2  # rows were decoded together


def test_a_burst_is_prefilled_over_several_steps(tiny_engine):
    """With a prefill budget of one token, three requests that arrive together join one per step: decode
    widths 1, 2, 3 (at least one request is admitted each step, whatever its length)."""
    import threading

    widths: list[int] = []
    step = tiny_engine.backend.step
    tiny_engine.backend.step = lambda state, tokens: (widths.append(tokens.shape[0]), step(state, tokens))[1]
    gate = threading.Event()

    async def run() -> None:
        scheduler = Scheduler(tiny_engine, max_batch=4, prefill_tokens=1)
        scheduler.start()
        scheduler.call(gate.wait)  # hold the engine thread until all three are queued
        config = GenerationConfig(max_new_tokens=6, greedy=True, ignore_eos=True)
        tickets = [scheduler.submit(tiny_engine.encode(p), [config]) for p in ("Hello", "The capital", "def")]
        gate.set()
        for ticket in tickets:
            finished = False
            while not finished:
                item = await ticket.queue.get()
                assert not isinstance(item, BaseException)
                finished = any(event.finish_reason for _, event in item)
        scheduler.stop()

    try:
        asyncio.run(run())
    finally:
        tiny_engine.backend.step = step
    assert widths[:3] == [1, 2, 3]


def test_a_failing_step_ends_requests_with_the_error_and_serving_goes_on(tiny_engine):
    async def run() -> tuple[BaseException, list[str]]:
        scheduler = Scheduler(tiny_engine, max_batch=2)
        scheduler.start()
        broken = scheduler.batcher
        broken.step = lambda: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
        ticket = scheduler.submit(
            tiny_engine.encode("Hello"), [GenerationConfig(max_new_tokens=3, greedy=True)]
        )
        error = await ticket.queue.get()
        ok = scheduler.submit(tiny_engine.encode("Hello"), [GenerationConfig(max_new_tokens=3, greedy=True)])
        finishes = []
        while not finishes:
            for _, event in await ok.queue.get():
                finishes += [event.finish_reason] if event.finish_reason else []
        scheduler.stop()
        assert scheduler.batcher is not broken and scheduler.in_flight == 0
        return error, finishes

    error, finishes = asyncio.run(run())
    assert isinstance(error, RuntimeError) and str(error) == "boom" and finishes == ["length"]


def test_a_prompt_tuning_prefix_reaches_every_request(tiny_engine, tmp_path):
    """An adapter's virtual tokens (prefix_embeds) go before every prompt: the server's greedy text equals
    Engine.generate with the same prefix, and differs from the text without it."""
    import torch
    from openai import OpenAI
    from servekit import start_server

    from llmlab.prompting.chat import render_chat

    prefix = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    running = start_server(tiny_engine, tmp_path, prefix_embeds=prefix)
    try:
        client = OpenAI(base_url=running.url + "/v1", api_key="x", max_retries=0)
        messages = [{"role": "user", "content": "Hello"}]
        got = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    finally:
        running.stop()
    prompt = render_chat(tiny_engine.tokenizer, messages)
    config = GenerationConfig(max_new_tokens=8, greedy=True)
    with_prefix = tiny_engine.generate([prompt], config, prefix_embeds=prefix)[0].text
    assert got.choices[0].message.content == with_prefix != tiny_engine.generate([prompt], config)[0].text


@pytest.mark.slow
def test_llmlab_serve_runs_as_a_process(tiny_folder, tmp_path):
    from openai import OpenAI

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmlab", "serve", "--model", str(tiny_folder), "--port", "0", "--precision", "fp32",
         "--threads", "1", "--rankings", str(tmp_path / "ranked.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("llmlab serve: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        name = client.models.list().data[0].id
        reply = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
        assert name == tiny_folder.name and reply.usage.completion_tokens >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=30) == 0 and time.monotonic() - started < 30
