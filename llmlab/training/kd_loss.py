"""Knowledge distillation loss (Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a Neural
Network", arXiv:1503.02531), per target token of a language model.

    p_T = softmax(z_teacher / T),  q_T = softmax(z_student / T)                    over the vocabulary
    kd_sum = T² · Σ_positions KL(p_T ‖ q_T) = T² · Σ_positions Σ_v p_T(v) (log p_T(v) − log q_T(v))
    ce_sum = Σ_positions −log softmax(z_student)[y]                                the label loss
    loss_sum = alpha · kd_sum + (1 − alpha) · ce_sum

The T² factor keeps the soft targets' gradient on the same scale as the label loss's when T changes (the
gradient of the KL term scales as 1/T²; paper, section 2). Like every llmlab objective the sums run over the
positions (the units) and the training loop divides by their number for the step. This is the "forward KL"
of DistilBERT and of the word-level KD of Kim and Rush (2016, arXiv:1606.07947); sequence-level KD (training
on the teacher's generated text) is `alpha = 0` on teacher-written targets. Matches trl's GKD loss with beta = 0 (forward KL at temperature T, which leaves
out the T² factor): tests/training/test_kd_loss.py::test_matches_trl_gkd_forward_kl; hand-computed check:
tests/training/test_kd_loss.py::test_kl_matches_hand_computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · Σ_n KL(softmax(teacher_n / T) ‖ softmax(student_n / T)), summed over the N positions.

    Args:
        student_logits: (N, V), with gradient.
        teacher_logits: (N, V), no gradient needed.
        temperature: T > 0; 1 is the plain KL between the two next-token distributions.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (N, V)
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)  # (N, V)
    kl = F.kl_div(log_q, log_p, reduction="sum", log_target=True)  # Σ p (log p − log q)
    return kl * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha · kd_sum + (1 − alpha) · ce_sum, kd_sum, ce_sum) over N positions.

    Args:
        student_logits, teacher_logits: (N, V) at the target positions.
        targets: (N,) the label token of each position.
        alpha: weight of the distillation term in [0, 1].
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    kd = kd_kl(student_logits, teacher_logits, temperature)
    ce = F.cross_entropy(student_logits.float(), targets, reduction="sum")
    return alpha * kd + (1 - alpha) * ce, kd, ce
