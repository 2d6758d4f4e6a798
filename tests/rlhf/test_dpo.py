"""DPO-family losses equal trl's on identical log-probs: trl 1.16's own `DPOTrainer._compute_loss` runs on a
stand-in trainer whose model returns the per-token log-probs we choose (trl keeps the loss inside that method;
it has no standalone `dpo_loss` any more). trl must be installed: these tests fail, not skip, without it."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from llmlab.errors import ConfigError
from llmlab.rlhf.dpo import DPO_LOSSES, hinge_loss, ipo_loss, robust_loss, sigmoid_loss, with_rpo

B, T = 4, 9


def _case(seed: int = 0):
    """Per-token log-probs for B chosen and B rejected completions of different lengths, and the reference's
    sequence log-probs. Returns everything trl and our functions need."""
    g = torch.Generator().manual_seed(seed)
    completion_mask = torch.zeros(2 * B, T, dtype=torch.long)
    for row, start in enumerate([3, 5, 2, 6, 4, 4, 7, 1]):
        completion_mask[row, start:] = 1
    shifted = completion_mask[:, 1:].bool()
    per_token = (-torch.rand(2 * B, T - 1, generator=g) * 3).masked_fill(~shifted, 0.0)
    policy = per_token.sum(dim=1)
    ref = policy + torch.randn(2 * B, generator=g)
    lengths = completion_mask.sum(dim=1).float()
    return per_token, completion_mask, policy, ref, lengths


def _trl_loss(
    loss_type: str, beta: float, label_smoothing: float = 0.0, seed: int = 0, rpo_alpha: float = 0.0
) -> torch.Tensor:
    """trl's DPOTrainer._compute_loss on the case's log-probs (precomputed reference log-probs); with
    `rpo_alpha`, trl's RPO: loss types [loss_type, "sft"] with weights [1, rpo_alpha]."""
    from trl import DPOTrainer

    per_token, completion_mask, _, ref, _ = _case(seed)
    zeros = torch.zeros_like(per_token)
    outputs = SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x),
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=[loss_type, "sft"] if rpo_alpha else [loss_type],
        loss_weights=[1.0, rpo_alpha] if rpo_alpha else [1.0], beta=beta, label_smoothing=label_smoothing,
        use_weighting=False, _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
        args=SimpleNamespace(discopop_tau=0.05),
    )  # fmt: skip
    inputs = {
        "input_ids": torch.ones(2 * B, T, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, T, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref[:B],
        "ref_rejected_logps": ref[B:],
    }
    return DPOTrainer._compute_loss(trainer, lambda **_: outputs, inputs, return_outputs=False)


def _ours(name: str, beta: float, label_smoothing: float = 0.0, seed: int = 0, normalise: bool = True):
    _, _, policy, ref, lengths = _case(seed)
    kwargs = {"beta": beta, "label_smoothing": label_smoothing}
    if name == "ipo" and normalise:
        kwargs.update(chosen_lengths=lengths[:B], rejected_lengths=lengths[B:])
    return DPO_LOSSES[name](policy[:B], policy[B:], ref[:B], ref[B:], **kwargs)


@pytest.mark.parametrize(
    ("name", "beta", "label_smoothing"),
    [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.0), ("ipo", 0.1, 0.0), ("ipo", 0.5, 0.0), ("robust", 0.1, 0.2),
     ("hinge", 0.1, 0.0), ("hinge", 2.0, 0.0)],
)  # fmt: skip
def test_matches_trl_dpo_trainer(name: str, beta: float, label_smoothing: float) -> None:
    for seed in range(3):
        expected = _trl_loss(name, beta, label_smoothing, seed)
        assert_close(_ours(name, beta, label_smoothing, seed).loss, expected)


@pytest.mark.parametrize(
    ("name", "beta", "alpha"), [("sigmoid", 0.1, 1.0), ("sigmoid", 0.5, 0.3), ("ipo", 0.2, 2.0)]
)
def test_rpo_matches_trl_dpo_trainer(name: str, beta: float, alpha: float) -> None:
    """RPO (older trl's rpo_alpha): the DPO loss plus alpha times the chosen tokens' mean NLL, as trl's "sft" term."""
    for seed in range(3):
        _, completion_mask, policy, _, _ = _case(seed)
        # the chosen token counts as DPOObjective takes them: the shifted mask (the first token is never scored)
        shifted = completion_mask[:, 1:].sum(dim=1).float()
        ours = with_rpo(_ours(name, beta, seed=seed), policy[:B], shifted[:B], alpha)
        assert_close(ours.loss, _trl_loss(name, beta, seed=seed, rpo_alpha=alpha))
        assert not torch.equal(ours.loss, _ours(name, beta, seed=seed).loss)


def test_rpo_hand_derived() -> None:
    """Two pairs with log pi(y_c) = -2 (4 tokens) and -6 (2 tokens): NLL per token = 8 / 6 = 1.3333333;
    every log-ratio 0, so sigmoid DPO is log 2 = 0.6931472 per pair; alpha 0.5: 0.6931472 + 0.6666667 = 1.3598139.
    alpha 0 returns the DPO output itself; a negative alpha is refused."""
    chosen = torch.tensor([-2.0, -6.0])
    dpo = sigmoid_loss(chosen, chosen, chosen, chosen, beta=0.1)
    out = with_rpo(dpo, chosen, torch.tensor([4.0, 2.0]), 0.5)
    assert_close(out.loss, torch.tensor(1.3598139))
    assert_close(out.losses, torch.tensor([1.3598139, 1.3598139]))
    assert_close(out.margins, dpo.margins)
    assert with_rpo(dpo, chosen, torch.tensor([4.0, 2.0]), 0.0) is dpo
    with pytest.raises(ConfigError, match="--rpo-alpha must be >= 0, got -1"):
        with_rpo(dpo, chosen, torch.tensor([4.0, 2.0]), -1.0)


def test_rpo_gradient_raises_the_chosen_likelihood() -> None:
    """The gradient on the chosen log-prob: DPO's alone, plus RPO's -alpha / |y_c| (a descent step raises the
    chosen completion's log-prob more with RPO)."""
    ref = torch.tensor([-5.0])
    grads = {}
    for alpha in (0.0, 1.0):
        chosen = torch.tensor([-5.0], requires_grad=True)
        rejected = torch.tensor([-5.0], requires_grad=True)
        with_rpo(
            sigmoid_loss(chosen, rejected, ref, ref, beta=0.1), chosen, torch.tensor([5.0]), alpha
        ).loss.backward()
        assert chosen.grad is not None
        grads[alpha] = float(chosen.grad)
    # d/d chosen: DPO -beta * sigma(0) = -0.05; RPO adds -alpha / 5 tokens = -0.2
    assert grads[0.0] == pytest.approx(-0.05)
    assert grads[1.0] == pytest.approx(-0.25)


def test_cdpo_label_smoothing_matches_the_published_formula() -> None:
    """trl <= 0.2x's sigmoid loss with label smoothing (conservative DPO, Mitchell 2023, eq. 3):
    -(1 - e) log sigma(beta h) - e log sigma(-beta h), transcribed from trl's `dpo_loss`."""
    _, _, policy, ref, _ = _case(5)
    beta, e = 0.3, 0.1
    h = (policy[:B] - ref[:B]) - (policy[B:] - ref[B:])
    expected = (-F.logsigmoid(beta * h) * (1 - e) - F.logsigmoid(-beta * h) * e).mean()
    assert_close(_ours("sigmoid", beta, e, seed=5).loss, expected)


def test_hand_derived_values() -> None:
    """One pair with log pi(y_c) = -1, log pi(y_r) = -3, log ref(y_c) = -2, log ref(y_r) = -2, beta = 0.5:
    log-ratios 1 and -1, h = 2, beta h = 1.
    sigmoid: -log sigma(1) = log(1 + e^-1) = 0.3132617; rewards 0.5 and -0.5, margin 1.
    ipo (no lengths): (h - 1/(2 beta))^2 = (2 - 1)^2 = 1.
    hinge: max(0, 1 - 1) = 0.
    robust with e = 0.25: (-(0.75) log sigma(1) + 0.25 log sigma(-1)) / 0.5
        = (0.75 * 0.3132617 - 0.25 * 1.3132617) / 0.5 = -0.1867383.
    """
    args = (torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))
    out = sigmoid_loss(*args, beta=0.5)
    assert_close(out.loss, torch.tensor(math.log1p(math.exp(-1))))
    assert_close(out.chosen_rewards, torch.tensor([0.5]))
    assert_close(out.rejected_rewards, torch.tensor([-0.5]))
    assert_close(out.margins, torch.tensor([1.0]))
    assert_close(ipo_loss(*args, beta=0.5).loss, torch.tensor(1.0))
    assert_close(hinge_loss(*args, beta=0.5).loss, torch.tensor(0.0))
    assert_close(robust_loss(*args, beta=0.5, label_smoothing=0.25).loss, torch.tensor(-0.1867383))


def test_ipo_length_normalisation_hand_derived() -> None:
    """Log-ratios 4 (chosen, 4 tokens) and -2 (rejected, 2 tokens): normalised h = 1 - (-1) = 2;
    beta = 1: (2 - 0.5)^2 = 2.25. Unnormalised h = 6: (6 - 0.5)^2 = 30.25."""
    args = (torch.tensor([4.0]), torch.tensor([-2.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    lengths = {"chosen_lengths": torch.tensor([4.0]), "rejected_lengths": torch.tensor([2.0])}
    assert_close(ipo_loss(*args, beta=1.0, **lengths).loss, torch.tensor(2.25))
    assert_close(ipo_loss(*args, beta=1.0).loss, torch.tensor(30.25))


def test_gradient_raises_the_chosen_margin() -> None:
    """One gradient step on the policy log-probs moves the chosen log-prob up and the rejected one down."""
    chosen = torch.tensor([-5.0], requires_grad=True)
    rejected = torch.tensor([-5.0], requires_grad=True)
    for name in DPO_LOSSES:
        chosen.grad = rejected.grad = None
        DPO_LOSSES[name](
            chosen, rejected, torch.tensor([-5.0]), torch.tensor([-5.0]), beta=0.1
        ).loss.backward()
        assert chosen.grad is not None and rejected.grad is not None
        assert float(chosen.grad) < 0 < float(rejected.grad), name


def test_settings_are_validated() -> None:
    args = (torch.zeros(1),) * 4
    with pytest.raises(ConfigError, match="--beta must be > 0, got 0"):
        sigmoid_loss(*args, beta=0)
    with pytest.raises(ConfigError, match=r"--label-smoothing must be in \[0, 0.5\), got 0.5"):
        robust_loss(*args, label_smoothing=0.5)
