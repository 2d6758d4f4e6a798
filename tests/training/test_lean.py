"""The lean SwiGLU: same values and gradients as transformers' MLP, bit for bit, and one (tokens,
intermediate) tensor fewer kept for the backward pass per block."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from llmlab.training.lean import SwiGLU, lean_mlps


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass while `fn()` builds the graph."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_is_autograd_bit_for_bit(dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    gate = torch.randn(3, 7, 40, generator=gen).to(dtype).requires_grad_()
    up = torch.randn(3, 7, 40, generator=gen).to(dtype).requires_grad_()
    grad = torch.randn(3, 7, 40, generator=gen).to(dtype)
    ref_gate, ref_up = gate.detach().clone().requires_grad_(), up.detach().clone().requires_grad_()
    expected = F.silu(ref_gate) * ref_up
    expected.backward(grad)
    out = SwiGLU.apply(gate, up)
    out.backward(grad)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(gate.grad, ref_gate.grad, rtol=0, atol=0)
    torch.testing.assert_close(up.grad, ref_up.grad, rtol=0, atol=0)


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_lean_mlps_same_model_less_memory(tiny_model, autocast: bool) -> None:
    base = copy.deepcopy(tiny_model).train()
    lean = copy.deepcopy(tiny_model).train()
    assert lean_mlps(lean) == base.config.num_hidden_layers
    assert lean_mlps(lean) == 0  # already switched
    ids = torch.randint(0, base.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))

    def loss_of(model):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return model(input_ids=ids, labels=ids).loss

        return run

    base_bytes, base_loss = saved_bytes(loss_of(base))
    lean_bytes, lean_loss = saved_bytes(loss_of(lean))
    base_loss.backward()
    lean_loss.backward()
    torch.testing.assert_close(lean_loss, base_loss, rtol=0, atol=0)
    for (name, p), q in zip(base.named_parameters(), lean.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=name)
    # silu(gate(x)) is no longer kept: tokens x intermediate x element size, per block
    element = 2 if autocast else 4
    expected = ids.numel() * base.config.intermediate_size * element * base.config.num_hidden_layers
    assert base_bytes - lean_bytes == expected
    assert lean.state_dict().keys() == base.state_dict().keys()


def test_lean_mlps_leaves_other_models_alone() -> None:
    from transformers import BertConfig, BertModel

    model = BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    assert lean_mlps(model) == 0
