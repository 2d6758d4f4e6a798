"""The shared loop: it learns, accumulation equals the large batch, NaN steps are skipped, subsets train alone."""

from __future__ import annotations

import json

import pytest
import torch
from synthetic import reverse_data, tiny

from llmlab.training.causal_lm import CausalLMObjective
from llmlab.training.checkpoint import TRAINABLE, SubsetSaver, list_checkpoints
from llmlab.training.config import TrainConfig
from llmlab.training.loop import Trainer
from llmlab.training.objective import LossOutput


def config(tmp_path, **kw):
    defaults = dict(out=str(tmp_path / "run"), precision="fp32", weight_decay=0.0, warmup_ratio=0.05)
    return TrainConfig(**(defaults | kw))


def test_tiny_model_learns_to_reverse(tmp_path):
    """A 2-layer Llama learns to reverse 4 symbols of 8: next-token accuracy on the completions (4 symbols and
    EOS) of held-out sequences ≥ 0.9 after 120 steps (measured 0.95 at 100 steps), from about 0.3 by chance
    (1/8 per symbol, EOS always right)."""
    torch.manual_seed(0)
    trainer = Trainer(
        tiny(), CausalLMObjective(), reverse_data(1200, seed=0, batch_size=32),
        config(tmp_path, max_steps=120, lr=5e-3, eval_every=120, batch_size=32),
        val_data=reverse_data(200, seed=1, batch_size=100, shuffle=False), eval_at_start=True,
    )  # fmt: skip
    result = trainer.fit()
    assert result.first_eval is not None and result.first_eval["val_accuracy"] < 0.3
    assert result.last_eval is not None and result.last_eval["val_accuracy"] >= 0.9
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "loss" in r]
    assert len(steps) == 120 and {"lr", "tokens_per_s", "grad_norm"} <= set(steps[0])
    assert (tmp_path / "run" / "loss.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "model.safetensors").is_file()


def train_capturing_grads(tmp_path, name, batch_size, grad_accum):
    """Weights after 3 steps and the gradients each step applied (captured just before AdamW's step)."""
    torch.manual_seed(0)
    model = tiny()
    data = reverse_data(48, seed=0, batch_size=batch_size)
    cfg = config(
        tmp_path / name, max_steps=3, lr=1e-2, batch_size=batch_size, grad_accum=grad_accum, save_every=100
    )
    trainer = Trainer(model, CausalLMObjective(), data, cfg)
    grads = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    )
    trainer.fit()
    return {n: p.detach().clone() for n, p in model.named_parameters()}, grads


def test_accumulation_equals_large_batch(tmp_path):
    """4 micro-batches of 2 apply the gradient of one batch of 8 (fp32 tolerance) at every step: the loss is
    normalised by the target tokens of the whole step, not per micro-batch. The weights after 3 AdamW steps
    agree to 1e-4: Adam divides by √v, which turns last-bit differences of near-zero gradient entries into
    visible (≤ 1e-4 here) weight differences."""
    large, large_grads = train_capturing_grads(tmp_path, "large", batch_size=8, grad_accum=1)
    accumulated, accumulated_grads = train_capturing_grads(tmp_path, "accum", batch_size=2, grad_accum=4)
    assert len(large_grads) == len(accumulated_grads) == 3
    for name, value in large_grads[0].items():
        torch.testing.assert_close(accumulated_grads[0][name], value, msg=name)
    for name, value in large.items():
        torch.testing.assert_close(accumulated[name], value, rtol=0, atol=1e-4, msg=name)


class NanAt(CausalLMObjective):
    """A loss that is NaN on the given calls."""

    def __init__(self, bad_calls):
        self.calls, self.bad = 0, set(bad_calls)

    def loss(self, model, batch):
        out = super().loss(model, batch)
        self.calls += 1
        return LossOutput(out.loss * float("nan"), out.metrics) if self.calls in self.bad else out


def test_nan_steps_are_skipped_and_reported(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    events = []
    cfg = config(tmp_path, max_steps=4, lr=1e-2, batch_size=4, grad_accum=2, save_every=100)
    trainer = Trainer(model, NanAt({3}), reverse_data(64, seed=0, batch_size=4), cfg, on_event=events.append)
    before = {}

    def snapshot(event):
        events.append(event)
        if event.kind == "step" and event.step == 1:
            before.update({n: p.detach().clone() for n, p in model.named_parameters()})
        if event.kind == "skip":
            for n, p in model.named_parameters():
                assert torch.equal(p, before[n]), f"{n} changed in a skipped step"

    trainer.on_event = snapshot
    result = trainer.fit()
    assert result.skipped_steps == 1 and result.steps == 4
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 2, "skipped": "loss was nan in micro-batch 1 of 2"} in lines
    assert [e.step for e in events if e.kind == "skip"] == [2]


def test_only_the_trainable_subset_changes_and_is_saved(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    named = dict(model.named_parameters())
    subset = {n: p for n, p in named.items() if "norm" in n}
    frozen_before = {n: p.detach().clone() for n, p in named.items() if n not in subset}
    cfg = config(tmp_path, max_steps=3, lr=1e-2, batch_size=8, keep_last=1)
    saver = SubsetSaver(model, list(subset), base="tiny")
    Trainer(model, CausalLMObjective(), reverse_data(48, 0, 8), cfg, trainable=subset, saver=saver).fit()
    for n, p in named.items():
        if n in subset:
            assert p.requires_grad
        else:
            assert not p.requires_grad and p.grad is None and torch.equal(p, frozen_before[n])
    ((step, folder),) = list_checkpoints(tmp_path / "run")
    from safetensors.torch import load_file

    saved = load_file(folder / TRAINABLE)
    assert step == 3 and sorted(saved) == sorted(subset)
    optimizer_keys = load_file(folder / "training_state.safetensors")
    assert {k.split("/")[1] for k in optimizer_keys if k.startswith("optimizer/")} == set(subset)


def test_early_stopping_and_retention(tmp_path):
    """With a learning rate too small to move the loss, the validation loss never improves after the first
    run: patience 2 stops at the third evaluation. The best checkpoint (step 2) is kept beside the last one."""
    torch.manual_seed(0)
    cfg = config(tmp_path, max_steps=50, lr=1e-12, batch_size=8, eval_every=2, patience=2, keep_last=1)
    val = reverse_data(16, seed=1, batch_size=16, shuffle=False)
    result = Trainer(tiny(), CausalLMObjective(), reverse_data(64, 0, 8), cfg, val_data=val).fit()
    assert (result.stopped, result.steps, result.best_step) == ("early_stopping", 6, 2)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 6]


def test_config_errors_name_the_flag():
    with pytest.raises(ValueError, match=r"--grad-accum must be a positive integer, got 0"):
        TrainConfig(out="x", grad_accum=0)
    with pytest.raises(ValueError, match=r"--lr must be above 0, got -1"):
        TrainConfig(out="x", lr=-1)
