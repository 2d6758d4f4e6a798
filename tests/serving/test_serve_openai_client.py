"""The official `openai` client against a real server on loopback (tiny random Llama, tiny store): models,
chat (seeded, n choices, stop, usage), streaming equal to the non-streamed text, completions, embeddings
(float and base64), tool calls with the constraint (streamed and not), retrieval with sources, errors."""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest

from llmlab.generation import GenerationConfig
from llmlab.prompting.chat import render_chat

HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "now",
        "description": "The time.",
        "parameters": {"type": "object", "properties": {"hours": {"type": "integer"}}, "required": ["hours"]},
    },
}


def check_call(call, tools=(WEATHER, TIME)):
    """A call names one of the tools and its arguments are exactly that tool's schema, with the right types."""
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    assert call.type == "function" and call.id.startswith("call_")
    params = schemas[call.function.name]
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == set(params["properties"])
    for name, value in arguments.items():
        spec = params["properties"][name]
        kind = {"string": str, "integer": int}[spec["type"]]
        assert isinstance(value, kind) and not isinstance(value, bool)
        if "enum" in spec:
            assert value in spec["enum"]
        if kind is str:
            assert value


def test_models_lists_the_model_and_the_embedder(client):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "tiny" and len(ids) == 2


def test_chat_is_seeded_and_equals_the_engine_alone(client, tiny_engine, tiny_tok):
    """Choice i samples with seed + i; choice 0 equals Engine.generate with the same settings."""
    r = client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, seed=7, n=2, temperature=0.9
    )
    again = client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, seed=7, temperature=0.9
    )
    alone = tiny_engine.generate(
        [render_chat(tiny_tok, HELLO)], GenerationConfig(max_new_tokens=8, seed=7, temperature=0.9, top_p=1.0)
    )[0]
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.content == again.choices[0].message.content == alone.text
    assert r.choices[0].message.content != r.choices[1].message.content
    assert r.usage.prompt_tokens == alone.prompt_tokens
    assert (
        r.usage.completion_tokens
        == sum(len(tiny_engine.encode(c.message.content)) >= 0 for c in r.choices) * 8
    )
    assert {c.finish_reason for c in r.choices} <= {"length", "stop"}


def test_stream_equals_the_whole_response(client):
    args = dict(model="tiny", messages=HELLO, max_tokens=12, temperature=0)
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert len({c.id for c in chunks}) == 1


def test_stop_string_ends_the_text_before_it(client):
    full = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=16, temperature=0)
    text = full.choices[0].message.content
    stop = text[3:5]
    cut = client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=16, temperature=0, stop=[stop]
    )
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_completions_and_streamed_completions(client):
    r = client.completions.create(model="tiny", prompt=["The capital", "Hello"], max_tokens=6, temperature=0)
    assert r.object == "text_completion" and [c.index for c in r.choices] == [0, 1]
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt="The capital", max_tokens=6, temperature=0, stream=True) if c.choices)  # fmt: skip
    assert streamed == r.choices[0].text and r.usage.completion_tokens == 12


def test_embeddings_float_and_base64_equal_the_embedder(client, tiny_store):
    model = client.models.list().data[1].id
    texts = ["knead the dough", "rocket nozzle"]
    expected = tiny_store.embedder.embed(texts)
    as_base64 = client.embeddings.create(model=model, input=texts)  # the client asks for base64 by default
    as_float = client.embeddings.create(model=model, input=texts, encoding_format="float")
    for result in (as_base64, as_float):
        got = np.array([d.embedding for d in result.data], dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert as_float.usage.prompt_tokens > 0


def test_tool_calls_with_the_constraint_are_always_valid(client):
    """tool_choice required: every one of n sampled replies from a random model is a valid call."""
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Weather in Paris?"}],
                                       tools=[WEATHER, TIME], tool_choice="required", n=4, seed=1, max_tokens=150)  # fmt: skip
    for choice in r.choices:  # parallel calls are allowed (parallel_tool_calls defaults to true)
        assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
        for call in choice.message.tool_calls:
            check_call(call)
    named = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Time?"}], tools=[WEATHER, TIME],
                                           tool_choice={"type": "function", "function": {"name": "now"}}, seed=2, max_tokens=100)  # fmt: skip
    assert named.choices[0].message.tool_calls[0].function.name == "now"
    check_call(named.choices[0].message.tool_calls[0])


def test_tool_calls_stream_as_deltas(client):
    chunks = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Weather?"}],
                  tools=[WEATHER], tool_choice="required", seed=3, max_tokens=150, stream=True, parallel_tool_calls=False))  # fmt: skip
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0
    check_call(calls[0], [WEATHER])
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_results_go_back_into_the_prompt(client):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees"},
    ]
    r = client.chat.completions.create(
        model="tiny", messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=4
    )
    assert r.choices[0].message.tool_calls is None and r.usage.prompt_tokens > 40


def test_retrieval_returns_context_and_sources(client):
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "How long to knead the dough?"}],
                                       extra_body={"retrieval": {"chunks": 1, "prompt": "zero-shot"}}, max_tokens=8)  # fmt: skip
    extra = r.model_extra
    assert extra["context"][0]["source"].endswith("bread.md") and "Knead" in extra["context"][0]["text"]
    assert isinstance(extra["sources"], list)
    chunks = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "rocket nozzle exhaust"}],
                  extra_body={"retrieval": {"chunks": 1, "mode": "bm25", "prompt": "zero-shot"}}, max_tokens=8, stream=True))  # fmt: skip
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert last.model_extra["context"][0]["source"].endswith("rocket.md")


@pytest.mark.parametrize(
    ("args", "status", "param"),
    [
        ({"model": "nope"}, 404, "model"),
        ({"temperature": 3}, 400, "temperature"),
        ({"temperature": "hot"}, 400, "temperature"),
        ({"max_tokens": 10**6}, 400, "max_tokens"),
        ({"n": 0}, 400, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"extra_body": {"nonsense": 1}}, 400, "nonsense"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages"),
        ({"tool_choice": "required"}, 400, "tool_choice"),
    ],
)
def test_bad_requests_get_openai_errors(client, args, status, param):
    call = {"model": "tiny", "messages": HELLO, "max_tokens": 2, **args}
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(**call)
    assert raised.value.status_code == status
    assert raised.value.body["param"] == param and raised.value.body["message"]
