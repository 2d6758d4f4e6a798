"""The decoding engine on a model with adapters: LoRA merged into the fused copy only, bottleneck adapters on
transformers' forward, switching adapters on one base model."""

from __future__ import annotations

import copy

import pytest
import torch
from kinds import randomize

from llmlab.generation import Engine, GenerationConfig
from llmlab.generation.backends import FusedForward, HFForward
from llmlab.models.int8 import int8_supported
from llmlab.peft import apply_lora, set_active_adapter
from llmlab.peft.adapters import apply_adapters
from llmlab.peft.checkpoint import merge_and_unload
from llmlab.peft.lora import LoRALinear

CONFIG = GenerationConfig(greedy=True, max_new_tokens=8, ignore_eos=True)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model(tiny_tok):
    """A tiny Llama with two random LoRA adapters ("a" on q/v, "b" on every linear layer) and a bottleneck."""
    from tiny import tiny_llama

    model = tiny_llama(len(tiny_tok), seed=4)
    apply_lora(model, rank=4, alpha=8, name="a", train=False)
    apply_lora(model, targets="all-linear", rank=2, alpha=4, name="b", train=False)
    apply_adapters(model, bottleneck=8, name="bottleneck", train=False)
    randomize(model, "lora_", seed=1, std=0.2)
    randomize(model, "bottleneck", seed=2, std=0.2)
    return model


def greedy_by_recompute(model, ids: list[int], steps: int = 8) -> list[int]:
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            out.append(int(model(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax()))
    return out


def test_fused_engine_follows_the_active_lora_and_leaves_the_model_unmerged(model, tiny_tok) -> None:
    """fp32 fused engine == cache-free greedy on the adapted model, for each adapter after a switch (a new
    engine per switch); the model's layers stay unmerged; with adapters off the base's tokens come back."""
    ids = tiny_tok("The capital of France is")["input_ids"]
    seen = []
    for name in ("a", "b", None):
        set_active_adapter(model, name)
        engine = Engine(model, tiny_tok, precision="fp32")
        assert isinstance(engine.backend.forward, FusedForward)
        tokens = engine.generate([ids], CONFIG)[0].token_ids
        assert tokens == greedy_by_recompute(model, ids)
        seen.append(tokens)
        assert all(m.merged is None for m in model.modules() if isinstance(m, LoRALinear))
    assert len({tuple(t) for t in seen}) == 3


@pytest.mark.skipif(not int8_supported(), reason="int8 decoding needs VNNI (the engine falls back to fp32)")
def test_int8_engine_with_lora_equals_int8_on_the_merged_model(model, tiny_tok) -> None:
    """Calibration and quantization see the merged weights: the same tokens as a plainly merged copy."""
    set_active_adapter(model, "b")
    ids = tiny_tok("Greedy decoding picks")["input_ids"]
    merged = merge_and_unload(copy.deepcopy(model))
    expected = Engine(merged, tiny_tok, precision="int8").generate([ids], CONFIG)[0].token_ids
    assert Engine(model, tiny_tok, precision="int8").generate([ids], CONFIG)[0].token_ids == expected


def test_bottleneck_adapters_decode_on_transformers_forward(model, tiny_tok) -> None:
    set_active_adapter(model, "bottleneck")
    engine = Engine(model, tiny_tok, precision="auto")
    assert isinstance(engine.backend.forward, HFForward)
    ids = tiny_tok("Language models predict")["input_ids"]
    assert engine.generate([ids], CONFIG)[0].token_ids == greedy_by_recompute(model, ids)


def test_adapter_switch_rebuilds_only_the_touched_linears(tiny_model, tiny_tok):
    """An engine built again after a LoRA switch (q_proj, v_proj) takes over the fused linears the adapter does
    not touch (o, gate_up, down, lm_head: the same objects) and builds only each layer's qkv; its output equals
    a fresh engine's. Switching back to the base rebuilds qkv from the base weights."""
    import copy

    import torch

    from llmlab.generation import Engine, GenerationConfig
    from llmlab.peft import apply_lora, set_active_adapter

    model = copy.deepcopy(tiny_model)
    apply_lora(model, targets=("q_proj", "v_proj"), rank=4, alpha=8, train=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.3)
    set_active_adapter(model, None)
    base = Engine(model, tiny_tok, "decoder-only", "fp32").backend.forward.fused  # type: ignore[attr-defined]
    set_active_adapter(model, "default")
    engine = Engine(model, tiny_tok, "decoder-only", "fp32")
    adapted = engine.backend.forward.fused  # type: ignore[attr-defined]
    for old, new in zip(base.layers, adapted.layers, strict=True):
        assert (
            new.o is old.o and new.gate_up is old.gate_up and new.down is old.down and new.qkv is not old.qkv
        )
    assert adapted.lm_head is base.lm_head
    config = GenerationConfig(greedy=True, max_new_tokens=6)
    fresh = copy.deepcopy(model)
    expected = Engine(fresh, tiny_tok, "decoder-only", "fp32").generate(["The capital"], config)[0].text
    assert engine.generate(["The capital"], config)[0].text == expected
