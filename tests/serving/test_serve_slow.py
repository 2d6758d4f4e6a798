"""The packaged SmolLM2 and MiniLM behind the server, through the official openai client: a chat answer,
streaming equal to the whole answer, a constrained tool call, MiniLM embeddings, and an answer from a store
with its sources. A small model's text differs from one CPU to another: only stable facts are asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

DOCS = {
    "bread.md": "# Baking bread\n\nKnead the dough for ten minutes. Let the dough rise for 1 hour before baking.\n",
    "rocket.md": "# Rocket engines\n\nA rocket engine burns propellant and pushes hot exhaust out of a nozzle.\n",
}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"}},
                          "required": ["city"]}}}  # fmt: skip


@pytest.fixture(scope="module")
def real(smollm, tmp_path_factory):
    from llmlab.generation import Engine
    from llmlab.rag.store import Store
    from llmlab.serving.app import BackgroundServer, Server
    from llmlab.serving.config import ServeConfig

    root = tmp_path_factory.mktemp("serve-real")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    store = Store.open(str(root / "store.sqlite"), embedder="minilm-l6")
    store.ingest([root / "docs"])
    config = ServeConfig(port=0, rankings=str(root / "ranked.jsonl"), threads="all")
    running = BackgroundServer(Server(Engine.from_loaded(smollm), config, smollm.name, store=store)).start()
    yield running, store, OpenAI(base_url=running.url + "/v1", api_key="x", max_retries=0, timeout=300)
    running.stop()
    store.close()


def test_chat_stream_and_tool_call(real):
    _, _, client = real
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=ask, temperature=0, max_tokens=24
    )
    streamed = client.chat.completions.create(model="smollm2-135m-instruct", messages=ask, temperature=0, max_tokens=24,
                                              stream=True)  # fmt: skip
    text = whole.choices[0].message.content
    assert (
        "Paris" in text and "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text
    )
    call = client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content":
        "What is the weather in Rome?"}], tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=48)  # fmt: skip
    (tool_call,) = call.choices[0].message.tool_calls
    arguments = json.loads(tool_call.function.arguments)
    assert (
        tool_call.function.name == "get_weather" and set(arguments) == {"city"} and arguments["city"].strip()
    )
    print(f"SmolLM2 tool call: {tool_call.function.arguments}")


def test_embeddings_and_retrieval_with_sources(real):
    _, store, client = real
    texts = ["How long should dough rise?", "rocket nozzle"]
    got = client.embeddings.create(model="minilm-l6", input=texts)
    np.testing.assert_allclose(
        np.array([d.embedding for d in got.data]), store.embedder.embed(texts), atol=1e-5
    )
    answer = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=48, extra_body={"retrieval": True},
                                            messages=[{"role": "user", "content": "How long should the dough rise?"}])  # fmt: skip
    extra = answer.model_extra
    print(f"answer: {answer.choices[0].message.content!r}; sources: {[s['label'] for s in extra['sources']]}")
    assert extra["context"][0]["source"].endswith("bread.md")
    assert extra["sources"] and extra["sources"][0]["source"].endswith("bread.md")  # an extractive answer
    assert {s["source"] for s in extra["sources"]} <= {c["source"] for c in extra["context"]}
    assert answer.choices[0].message.content
