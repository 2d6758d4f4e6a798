"""The distillation loss against KL divergences computed by hand, torch's KL and trl's GKD loss (beta = 0)."""

from __future__ import annotations

import math

import pytest
import torch

from llmlab.training.kd_loss import distillation_loss, kd_kl


def test_kl_matches_hand_computed():
    """Two positions, vocabulary of 2, T = 2.

    Position 1: teacher logits (2 ln 3, 0) at T = 2 give p = softmax(ln 3, 0) = (3/4, 1/4); student logits
    (0, 0) give q = (1/2, 1/2). KL(p‖q) = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812.
    Position 2: teacher (0, 0) -> p = (1/2, 1/2); student (0, 2 ln 3) -> q = (1/4, 3/4).
    KL(p‖q) = 1/2 ln 2 + 1/2 ln(2/3) = 0.143841.
    kd = T² (0.130812 + 0.143841) = 4 × 0.274653 = 1.098612 (= ln 3: the two terms add up to ln(3) / 4).
    """
    ln3 = math.log(3)
    teacher = torch.tensor([[2 * ln3, 0.0], [0.0, 0.0]])
    student = torch.tensor([[0.0, 0.0], [0.0, 2 * ln3]])
    first = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    second = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert first == pytest.approx(0.130812, abs=1e-6) and second == pytest.approx(0.143841, abs=1e-6)
    kd = kd_kl(student, teacher, temperature=2.0)
    assert float(kd) == pytest.approx(4 * (first + second), rel=1e-6)
    assert float(kd) == pytest.approx(ln3, rel=1e-6)


def test_mix_with_the_label_loss_and_gradient():
    """loss = α kd + (1 − α) ce, with ce = −ln q(y): student (0, 2 ln 3) at T = 1 gives q = (1/10, 9/10), so
    for y = 1, ce = ln(10/9); for identical distributions kd = 0 and its gradient vanishes."""
    ln3 = math.log(3)
    student = torch.tensor([[0.0, 2 * ln3]], requires_grad=True)
    teacher = student.detach().clone()
    loss, kd, ce = distillation_loss(student, teacher, torch.tensor([1]), alpha=0.25, temperature=1.0)
    assert float(kd.detach()) == pytest.approx(0.0, abs=1e-7)
    assert float(ce.detach()) == pytest.approx(math.log(10 / 9), rel=1e-6)
    assert float(loss.detach()) == pytest.approx(0.75 * math.log(10 / 9), rel=1e-6)
    kd_kl(student, teacher, 3.0).backward()
    assert student.grad is not None and float(student.grad.abs().max()) < 1e-6


def test_matches_torch_kl_of_random_logits():
    """Against the textbook sum over positions of Σ p (log p − log q) at T = 1.5, scaled by T²."""
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    p, q = (t / 1.5).softmax(-1), (s / 1.5).softmax(-1)
    expected = 1.5**2 * (p * (p.log() - q.log())).sum()
    torch.testing.assert_close(kd_kl(s, t, 1.5), expected)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        kd_kl(s, t, 0.0)


def _trl_forward_kl():
    """trl's knowledge-distillation loss (GKD, Agarwal et al. 2023): beta = 0 is the forward
    KL(teacher ‖ student) at a temperature, without the T² factor. Imported, not copied: the test fails
    when trl is missing."""
    import warnings

    with (
        warnings.catch_warnings()
    ):  # "APIs here are unstable": the version is pinned in pyproject's dev extra
        warnings.simplefilter("ignore")
        from trl.experimental.gkd import GKDTrainer

    return GKDTrainer.generalized_jsd_loss


def test_matches_trl_gkd_forward_kl():
    """kd_kl(T) = T² · trl's generalized_jsd_loss(beta=0, T, reduction="sum"), on (B, T, V) logits with
    ignored (-100) positions."""
    jsd = _trl_forward_kl()
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    labels[0, :2] = -100
    mask = labels != -100
    for temperature in (1.0, 2.0, 0.5):
        reference = jsd(student, teacher, labels=labels, beta=0.0, temperature=temperature, reduction="sum")
        ours = kd_kl(student[mask], teacher[mask], temperature)
        torch.testing.assert_close(ours, temperature**2 * reference)


def test_objective_matches_trl_on_a_tiny_llama():
    """`DistillObjective.loss` on a batch of a tiny Llama student and teacher: the KD term equals T² × trl's
    forward KL over the target positions (prompt and padding positions ignored), the label term the summed
    cross-entropy, mixed with alpha. A batch's `targets[t]` is the token that follows position t."""
    from tiny import tiny_llama

    from llmlab.data.packing import IGNORE
    from llmlab.training.distill import DistillObjective

    student, teacher = tiny_llama(vocab_size=40), tiny_llama(vocab_size=40, seed=1)
    torch.manual_seed(0)
    input_ids = torch.randint(0, 40, (2, 9))
    targets = torch.full_like(input_ids, IGNORE)
    targets[:, 3:-1] = input_ids[:, 4:]  # a prompt of 4 tokens, not learned; the last token has no target
    batch = {"input_ids": input_ids, "targets": targets}
    objective = DistillObjective(teacher, alpha=0.3, temperature=2.0, vocab_size=40)
    out = objective.loss(student, batch)
    with torch.no_grad():
        s_logits = student(input_ids=input_ids).logits  # (B, T, V)
        t_logits = teacher(input_ids=input_ids).logits
    kd = 4.0 * _trl_forward_kl()(
        s_logits, t_logits, labels=targets, beta=0.0, temperature=2.0, reduction="sum"
    )
    ce = torch.nn.functional.cross_entropy(s_logits.reshape(-1, 40), targets.reshape(-1), reduction="sum")
    assert objective.units(batch) == 2 * 5
    assert out.metrics["kd"] == pytest.approx(float(kd), rel=1e-5)
    assert out.metrics["ce"] == pytest.approx(float(ce), rel=1e-5)
    torch.testing.assert_close(out.loss.detach(), 0.3 * kd + 0.7 * ce)
