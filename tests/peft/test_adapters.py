"""Bottleneck adapters: the equation, where they go in each kind, and the invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kinds import KIND_NAMES, KINDS, batch, output, randomize
from torch import nn

from llmlab.errors import ConfigError
from llmlab.peft import disable_adapters, trainable_parameters
from llmlab.peft.adapters import apply_adapters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_adapter_equals_the_equation() -> None:
    """y = W x + b, then y + W_up silu(W_down y + b_down) + b_up, computed by hand on a 2-layer toy."""
    torch.manual_seed(0)
    toy = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    x = torch.randn(5, 4)
    assert apply_adapters(toy, bottleneck=2, targets=["0"]) == ["0"]
    adapter = toy[0].bottleneck.adapters["default"]
    randomize(toy, "bottleneck", std=0.5)
    y = F.linear(x, toy[0].weight, toy[0].bias)
    h = y + F.linear(
        F.silu(F.linear(y, adapter.down.weight, adapter.down.bias)), adapter.up.weight, adapter.up.bias
    )
    expected = F.linear(torch.tanh(h), toy[2].weight, toy[2].bias)
    torch.testing.assert_close(toy(x), expected)


PLACES = {
    "decoder-only": ["model.layers.{i}.self_attn.o_proj", "model.layers.{i}.mlp.down_proj"],
    "encoder-only": ["encoder.layer.{i}.attention.output.dense", "encoder.layer.{i}.output.dense"],
    "encoder-decoder": [
        "encoder.block.{i}.layer.0.SelfAttention.o", "encoder.block.{i}.layer.1.DenseReluDense.wo",
        "decoder.block.{i}.layer.0.SelfAttention.o", "decoder.block.{i}.layer.1.EncDecAttention.o",
        "decoder.block.{i}.layer.2.DenseReluDense.wo",
    ],
}  # fmt: skip


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_placed_after_each_sublayer_and_identity_at_init(kind: str) -> None:
    """One adapter after every attention and feed-forward output projection; the model is unchanged at init
    (exactly); disabled equals the base after training-like changes; the base keys are all still there."""
    base = KINDS[kind].model()
    before = output(base, kind)
    model = KINDS[kind].model()
    modules = apply_adapters(model, bottleneck=8)
    assert sorted(modules) == sorted(p.format(i=i) for i in range(2) for p in PLACES[kind])
    torch.testing.assert_close(output(model, kind), before, rtol=0, atol=0)
    randomize(model, "bottleneck")
    assert not torch.allclose(output(model, kind), before, atol=1e-3)
    with disable_adapters(model):
        torch.testing.assert_close(output(model, kind), before, rtol=0, atol=0)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(".bottleneck." in k for k in missing)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_only_adapter_parameters_train(kind: str) -> None:
    model = KINDS[kind].model().train()
    apply_adapters(model, bottleneck=8)
    trainable = trainable_parameters(model)
    assert trainable and all(".bottleneck.adapters.default." in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2)
    for _ in range(3):
        out = model(**batch(kind))
        (out.last_hidden_state if kind == "encoder-only" else out.logits).square().mean().backward()
        assert {n for n, p in model.named_parameters() if p.grad is not None} <= set(trainable)
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    # W_down gets no gradient on the first step (W_up = 0), then both move; nothing else does.
    assert changed == set(trainable)


def test_bad_settings_name_the_flag() -> None:
    model = KINDS["decoder-only"].model()
    with pytest.raises(ConfigError, match=r"--bottleneck must be a positive integer \(or 0: the hidden size / 16\), got -1"):  # fmt: skip
        apply_adapters(model, bottleneck=-1)
    with pytest.raises(ConfigError, match="--activation must be one of silu, relu, gelu, tanh, got 'swish'"):
        apply_adapters(model, activation="swish")
    with pytest.raises(ConfigError, match=r"--targets 'out_proj' matches no module of this model; its linear layers are named .*o_proj"):  # fmt: skip
        apply_adapters(model, targets=["out_proj"])


def test_default_size_is_a_sixteenth_of_the_hidden_size(tmp_path) -> None:
    """`bottleneck` 0 (the default) gives each adapter d / 16 units (AdapterHub's reduction factor), and the
    saved adapter records that number, so it loads back to the same size."""
    import json

    from llmlab.peft.checkpoint import load_adapter, save_adapter
    from llmlab.peft.registry import list_adapters

    model = KINDS["decoder-only"].model()
    hidden = model.config.hidden_size
    apply_adapters(model)
    assert list_adapters(model)["default"].config.bottleneck == hidden // 16
    down = next(m for n, m in model.named_modules() if n.endswith(".down"))
    assert tuple(down.weight.shape) == (hidden // 16, hidden)
    save_adapter(model, tmp_path)
    assert json.loads((tmp_path / "llmlab_adapter.json").read_text())["config"]["bottleneck"] == hidden // 16
    fresh = KINDS["decoder-only"].model()
    load_adapter(fresh, tmp_path)
    assert list_adapters(fresh)["default"].config.bottleneck == hidden // 16
