"""The fused next-token loss equals transformers' own loss; models with transformed logits take the plain path."""

from __future__ import annotations

import pytest
import torch

from llmlab.data.packing import single_rows
from llmlab.data.tokenize import Tokenized
from llmlab.training.batches import collate
from llmlab.training.causal_lm import CausalLMObjective, split_head


def test_matches_transformers_loss(tiny_model):
    """Sum over target tokens = transformers' mean loss from `labels` (prompt and padding set to -100) × the
    number of targets; two rows of different lengths, so padding is exercised too."""
    g = torch.Generator().manual_seed(0)
    a = Tokenized(torch.randint(4, 300, (9,), generator=g).tolist(), [False] * 4 + [True] * 5, "a")
    b = Tokenized(torch.randint(4, 300, (6,), generator=g).tolist(), [False] * 2 + [True] * 4, "b")
    batch = collate(single_rows([a, b]), pad_id=3)
    objective = CausalLMObjective()
    ours = objective.loss(tiny_model, batch).loss
    labels = torch.full_like(batch["input_ids"], -100)
    for i, ex in enumerate((a, b)):
        labels[i, : len(ex)] = torch.tensor(
            [t if m else -100 for t, m in zip(ex.input_ids, ex.loss_mask, strict=True)]
        )
    mask = (torch.arange(batch["input_ids"].shape[1])[None] < torch.tensor([[9], [6]])).long()
    reference = tiny_model(input_ids=batch["input_ids"], attention_mask=mask, labels=labels).loss
    assert objective.units(batch) == 5 + 4  # the completion tokens of a and b
    torch.testing.assert_close(ours, reference * objective.units(batch))


def test_soft_capped_logits_take_the_full_forward(tiny_model):
    tiny_model.config.final_logit_softcapping = 30.0
    try:
        assert split_head(tiny_model) is None
    finally:
        tiny_model.config.final_logit_softcapping = None
    assert split_head(tiny_model) is not None


@pytest.mark.parametrize("setting", ["fp32", "bf16-autocast", "frozen-head", "scaled"])
def test_chunked_loss_equals_the_whole(monkeypatch, setting):
    """Chunking the output projection and the softmax (here 3 rows at a time, gradients computed chunk by
    chunk in the forward) gives the same summed loss, the same accuracy flags and the same gradients as one
    (N, V) pass: in fp32, under bf16 autocast, with a frozen output layer (PEFT), and for a scaled loss."""
    import torch
    from tiny import tiny_llama

    from llmlab.training import causal_lm

    torch.manual_seed(0)
    model = tiny_llama(64, seed=0).train()
    if setting == "frozen-head":
        model.lm_head.weight.requires_grad_(False)
    ids = torch.randint(0, 64, (2, 9))
    batch = {"input_ids": ids, "targets": ids.roll(-1, 1), "position_ids": torch.arange(9).repeat(2, 1)}
    autocast = setting == "bf16-autocast"
    factor = 0.37 if setting == "scaled" else 1.0

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, ok = causal_lm.token_losses(model, batch)
        (loss * factor).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return loss, ok, grads

    whole, whole_ok, grads = run()
    monkeypatch.setattr(causal_lm, "CHUNK_LOGITS", 3 * 64)
    chunked, chunked_ok, chunked_grads = run()
    tolerance = {"rtol": 1.6e-2, "atol": 1e-4} if autocast else {}
    torch.testing.assert_close(chunked, whole, **tolerance)
    assert torch.equal(chunked_ok, whole_ok)
    assert chunked_grads.keys() == grads.keys()
    assert ("lm_head.weight" in grads) == (setting != "frozen-head")
    for name, grad in grads.items():
        if autocast:  # the whole pass rounds each gradient matmul to bf16 once; chunks add in fp32
            tolerance = {"rtol": 1.6e-2, "atol": 2**-7 * grad.abs().max().item()}
        torch.testing.assert_close(chunked_grads[name], grad, **tolerance, msg=name)


def test_chunked_loss_without_gradients_computes_none(monkeypatch):
    """Validation (no_grad): the chunks compute the loss only, never the gradients; the same sum."""
    import torch
    from tiny import tiny_llama

    from llmlab.training import causal_lm

    model = tiny_llama(64, seed=0).eval()
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "targets": ids.roll(-1, 1), "position_ids": torch.arange(9).repeat(2, 1)}
    with torch.no_grad():
        whole, whole_ok = causal_lm.token_losses(model, batch)
        monkeypatch.setattr(causal_lm, "CHUNK_LOGITS", 3 * 64)
        monkeypatch.setattr(causal_lm._HeadLoss, "apply", None)  # calling it would fail
        chunked, chunked_ok = causal_lm.token_losses(model, batch)
    torch.testing.assert_close(chunked, whole)
    assert torch.equal(chunked_ok, whole_ok)
