"""Token masks for tool calls: exact against a brute-force walk of every token, and with a tiny random model
100% of sampled calls parse and validate (the unconstrained rate is printed beside it)."""

from __future__ import annotations

import json
import re
from typing import Literal

import numpy as np
import pytest
import torch

from llmlab.agents.json_constraint import json_schema_constraint, resolve_tool_choice, tool_call_constraint
from llmlab.agents.parsing import parse_tool_calls
from llmlab.agents.tools import as_tool, tool
from llmlab.agents.vocab import TokenVocab, token_bytes
from llmlab.errors import ConfigError
from llmlab.generation import Engine, GenerationConfig


@tool
def calculator(expression: str) -> str:
    """Compute arithmetic."""
    return expression


@tool
def weather(city: str, unit: Literal["c", "f"] = "c", days: int = 1, hourly: bool = False) -> str:
    """Weather forecast."""
    return city


TOOLS = [calculator, weather]
NAMED = {"type": "function", "function": {"name": "weather"}}


def test_token_bytes_decode_like_the_tokenizer(tiny_tok) -> None:
    pieces = token_bytes(tiny_tok)
    for text in ["Héllo wörld 🙂 中文", '{"a": [1, 2.5e3, "x\\n"]}', "  spaces\tand\nlines"]:
        ids = tiny_tok(text, add_special_tokens=False)["input_ids"]
        assert b"".join(pieces[i] for i in ids).decode("utf-8") == tiny_tok.decode(ids)
    assert all(pieces[i] is None for i in tiny_tok.all_special_ids)


def brute_force(masker, state: int, eos: list[int]) -> np.ndarray:
    vocab: TokenVocab = masker.vocab
    want = np.zeros(vocab.size, dtype=bool)
    for t, piece in enumerate(vocab.pieces):
        if piece and masker.auto.walk(state, piece) >= 0:
            want[t] = True
    if masker.auto.accepting(state):
        want[eos] = True
    return want


@pytest.mark.parametrize("choice", ["required", "auto", "named"])
def test_masks_equal_a_brute_force_walk(tiny_tok, choice: str) -> None:
    hook = tool_call_constraint(tiny_tok, TOOLS, NAMED if choice == "named" else choice, eos_ids=[2])
    start = '<tool_call>\n{"name": "weather", "arguments": ' if choice == "named" else ""
    head = "It is " if choice == "auto" else ""
    text = (
        head
        + '<tool_call>\n{"name": "weather", "arguments": {"city": "Zoë \\"Z\\"", "unit": "f", "days": 12}}\n</tool_call>'
    )
    ids = tiny_tok(text[len(start) :], add_special_tokens=False)["input_ids"]
    hook = tool_call_constraint(
        tiny_tok, TOOLS, NAMED if choice == "named" else choice, eos_ids=[2], start_text=start
    )
    for i in range(len(ids) + 1):
        mask = hook(0, ids[:i])
        state = hook._rows[0][1]
        want = brute_force(hook.masker, state, [2])
        got = np.ones(len(want), dtype=bool) if mask is None else mask.numpy()
        if mask is None:  # free text: everything usable is allowed (special tokens unmasked)
            assert want[hook.masker.vocab.usable].all()
        else:
            assert (got == want).all(), (tiny_tok.decode(ids[:i]), np.nonzero(got != want))
        if i < len(ids):
            assert mask is None or mask[ids[i]], tiny_tok.decode(ids[: i + 1])
    assert mask is not None and mask[2]  # the end of text is allowed once the call is complete


def test_resolve_tool_choice() -> None:
    tools = [as_tool(t) for t in TOOLS]
    assert resolve_tool_choice(tools, "auto") == (tools, "auto")
    assert resolve_tool_choice(tools, NAMED) == (tools[1:], "required")
    with pytest.raises(ConfigError, match="not among the tools"):
        resolve_tool_choice(tools, {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(ConfigError, match="tool_choice must be one of"):
        resolve_tool_choice(tools, "sometimes")
    assert tool_call_constraint(None, TOOLS, "none") is None


@pytest.fixture(scope="module")
def engine(tiny_tok, tiny_model):
    return Engine(tiny_model, tiny_tok, precision="fp32")


def sample_calls(engine, hook, n: int, max_new_tokens: int) -> list[str]:
    prompt = "<|im_start|>user\nweather in Rome?<|im_end|>\n<|im_start|>assistant\n"
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, seed=3)
    return [c.text for c in engine.generate([prompt] * n, config, allowed_tokens=hook)]


def test_random_model_calls_are_always_valid(engine, tiny_tok) -> None:
    """Hand-derived bound: a random 320-token model almost never writes `<tool_call>` JSON by chance, so
    unconstrained validity is near 0; with the grammar every sampled call must parse and validate."""
    n, budget = 12, 110
    hook = tool_call_constraint(
        tiny_tok, TOOLS, "required", max_tokens=budget, eos_ids=sorted(engine.eos_ids)
    )
    constrained = sample_calls(engine, hook, n, budget)
    free = sample_calls(engine, None, n, budget)
    rate = [
        sum(len(parse_tool_calls(t, TOOLS).valid_calls) >= 1 for t in texts) / n
        for texts in (constrained, free)
    ]
    print(f"valid calls: constrained {rate[0]:.0%}, unconstrained {rate[1]:.0%} ({n} samples each)")
    assert rate[0] == 1.0 and rate[1] < 1.0
    for text in constrained:  # and the text is exactly the calls, nothing around them
        calls = re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text, re.S)
        assert calls and "".join(f"<tool_call>\n{c}\n</tool_call>" for c in calls) == text.replace(
            "\n<tool_call>", "<tool_call>", len(calls) - 1
        )
        assert all(json.loads(c)["name"] in ("calculator", "weather") for c in calls)


def test_calls_finish_within_a_tight_budget(engine, tiny_tok) -> None:
    """The shortest weather call `<tool_call>\\n{"name":"weather","arguments":{"city":"x"}}\\n</tool_call>` is
    70 bytes; with 72 tokens the budget check must steer every sample to a complete call."""
    hook = tool_call_constraint(tiny_tok, [weather], NAMED, max_tokens=72, eos_ids=sorted(engine.eos_ids))
    for text in sample_calls(engine, hook, 6, 72):
        assert parse_tool_calls(text, [weather]).valid_calls, text


def test_json_schema_constraint(engine, tiny_tok) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
        "required": ["n", "s"],
    }
    hook = json_schema_constraint(tiny_tok, schema, max_tokens=40, eos_ids=sorted(engine.eos_ids))
    config = GenerationConfig(max_new_tokens=40, temperature=1.0, seed=1)
    for out in engine.generate(["x"] * 4, config, allowed_tokens=hook):
        value = json.loads(out.text)
        assert isinstance(value["n"], int) and isinstance(value["s"], str)


def test_masks_are_bool_tensors_of_the_logits_width(tiny_tok) -> None:
    hook = tool_call_constraint(tiny_tok, TOOLS, "required", vocab_size=len(tiny_tok) + 8, eos_ids=[2])
    mask = hook(0, [])
    assert mask.dtype == torch.bool and mask.shape == (len(tiny_tok) + 8,) and not mask[len(tiny_tok) :].any()
