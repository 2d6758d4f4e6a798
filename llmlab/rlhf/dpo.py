"""Direct preference optimisation losses on sequence log-probs of a policy and a frozen reference.

    h = (log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x))       (difference of log-ratios)

    sigmoid  -log sigma(beta h)                       DPO, Rafailov et al., 2023, arXiv:2305.18290, eq. 7
             -(1-e) log sigma(beta h) - e log sigma(-beta h)   with label_smoothing e: conservative DPO
                                                      (cDPO: Mitchell, 2023, ericmitchell.ai/cdpo.pdf, eq. 3)
    ipo      (h' - 1/(2 beta))^2                      IPO, Azar et al., 2023, arXiv:2310.12036, eq. 17
    robust   (-(1-e) log sigma(beta h) + e log sigma(-beta h)) / (1 - 2e)
                                                      rDPO, Chowdhury et al., 2024, arXiv:2403.00409
    hinge    max(0, 1 - beta h)                       SLiC-HF, Zhao et al., 2023, arXiv:2305.10425

    + alpha * NLL(y_c)                                RPO, Pang et al., 2024, arXiv:2404.19733: any of the
                                                      above plus alpha times the chosen completions'
                                                      negative log-likelihood per token (`with_rpo`)

All take the same arguments, so a trainer can call any entry of `DPO_LOSSES`; a variant ignores the keyword
arguments it does not use (label_smoothing in ipo and hinge, the lengths everywhere but ipo). Each returns the
mean loss, the per-pair losses, the implicit rewards beta * (log pi - log ref) of the chosen and rejected
completions (detached, for logging) and their margin. For IPO, h' divides each log-ratio by its
completion's token count when lengths are given, as trl does (its authors confirmed that the paper's results
use this normalisation); without lengths it is the paper's h.
Matches trl 1.16's `DPOTrainer` loss for loss_type sigmoid, ipo, robust and hinge on identical log-probs
(its own code is called in the test), and RPO matches its loss_type ["sigmoid", "sft"] with loss_weights
[1, alpha] (older trl's `rpo_alpha`; the NLL is the mean over every chosen completion token of the
micro-batch); the label-smoothed sigmoid matches trl <= 0.2x's `dpo_loss`
(https://github.com/huggingface/trl/blob/v0.12.0/trl/trainer/dpo_trainer.py, `dpo_loss`, "sigmoid").
Parity: tests/rlhf/test_dpo.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmlab.errors import ConfigError


@dataclass(frozen=True)
class DPOOutput:
    """What a DPO-family loss returns."""

    loss: torch.Tensor
    """Scalar: the mean of `losses`."""
    losses: torch.Tensor
    """(B,) one loss per pair."""
    chosen_rewards: torch.Tensor
    """(B,) beta * (log pi(y_c|x) - log ref(y_c|x)), detached."""
    rejected_rewards: torch.Tensor
    """(B,) beta * (log pi(y_r|x) - log ref(y_r|x)), detached."""

    @property
    def margins(self) -> torch.Tensor:
        """(B,) chosen_rewards - rejected_rewards: positive when the policy prefers the chosen completion more
        than the reference does."""
        return self.chosen_rewards - self.rejected_rewards


DPOLoss = Callable[..., DPOOutput]


def _check(beta: float, label_smoothing: float, top: float = 0.5) -> None:
    if not beta > 0:
        raise ConfigError(f"--beta must be > 0, got {beta}; 0.1 is the usual value")
    if not 0 <= label_smoothing < top:
        raise ConfigError(f"--label-smoothing must be in [0, {top}), got {label_smoothing}")


def _output(
    losses: torch.Tensor, chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float
) -> DPOOutput:
    return DPOOutput(
        losses.mean(), losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()
    )


def sigmoid_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    **_: object,
) -> DPOOutput:
    """DPO: -log sigma(beta h); with label_smoothing e > 0, conservative DPO (e = share of flipped labels).

    Args:
        policy_chosen_logps, policy_rejected_logps: (B,) summed completion log-probs under the policy.
        ref_chosen_logps, ref_rejected_logps: (B,) the same under the reference (no gradient needed).
        beta: the strength of the implicit KL constraint (larger stays closer to the reference).
        label_smoothing: assumed probability that a preference label is flipped, in [0, 0.5).
    """
    _check(beta, label_smoothing)
    chosen, rejected = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    logits = beta * (chosen - rejected)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return _output(losses, chosen, rejected, beta)


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    **_: object,
) -> DPOOutput:
    """IPO: (h' - 1/(2 beta))^2, a squared loss that keeps the log-ratio gap at 1/(2 beta) instead of pushing it
    to infinity; beta is the paper's tau. `chosen_lengths`/`rejected_lengths` (B,) are completion token counts
    (each log-ratio is divided by its count, as trl does); leave them None for the paper's unnormalised h."""
    _check(beta, 0.0)
    chosen, rejected = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    if (chosen_lengths is None) != (rejected_lengths is None):
        raise ConfigError("give both chosen_lengths and rejected_lengths, or neither")
    if chosen_lengths is not None and rejected_lengths is not None:
        h = chosen / chosen_lengths.clamp(min=1) - rejected / rejected_lengths.clamp(min=1)
    else:
        h = chosen - rejected
    losses = (h - 1 / (2 * beta)) ** 2
    return _output(losses, chosen, rejected, beta)


def robust_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    **_: object,
) -> DPOOutput:
    """rDPO: an unbiased estimate of the clean-label DPO loss when a share e of the labels is flipped."""
    _check(beta, label_smoothing)
    chosen, rejected = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    logits = beta * (chosen - rejected)
    clean = -(1 - label_smoothing) * F.logsigmoid(logits)
    flipped = -label_smoothing * F.logsigmoid(-logits)
    losses = (clean - flipped) / (1 - 2 * label_smoothing)
    return _output(losses, chosen, rejected, beta)


def hinge_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    **_: object,
) -> DPOOutput:
    """SLiC's calibration hinge on the log-ratio gap: max(0, 1 - beta h); 1/beta is the margin to reach."""
    _check(beta, 0.0)
    chosen, rejected = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    losses = torch.relu(1 - beta * (chosen - rejected))
    return _output(losses, chosen, rejected, beta)


DPO_LOSSES: dict[str, DPOLoss] = {
    "sigmoid": sigmoid_loss,
    "ipo": ipo_loss,
    "robust": robust_loss,
    "hinge": hinge_loss,
}


def with_rpo(
    output: DPOOutput, policy_chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor, alpha: float
) -> DPOOutput:
    """RPO: `output`'s loss plus alpha * the chosen completions' negative log-likelihood per token,
    -sum(log pi(y_c|x)) / sum(|y_c|) over the batch (trl's "sft" term, a batch mean over tokens, not pairs).

    DPO alone only widens the gap between chosen and rejected and may lower the chosen completions' own
    likelihood while doing it (the model then drifts to text neither side had); the NLL term keeps the chosen
    completions likely. alpha = 0 returns `output` unchanged.

    Args:
        output: a `DPO_LOSSES` result on the same pairs.
        policy_chosen_logps: (B,) summed completion log-probs of the chosen completions under the policy.
        chosen_lengths: (B,) their completion token counts.
        alpha: the weight of the NLL term, >= 0 (Pang et al. use 1).
    """
    if not alpha >= 0:
        raise ConfigError(
            f"--rpo-alpha must be >= 0, got {alpha}; 1.0 is the published value, 0 turns it off"
        )
    if alpha == 0:
        return output
    nll = -policy_chosen_logps.sum() / chosen_lengths.sum().clamp(min=1)
    losses = output.losses + alpha * nll
    return DPOOutput(losses.mean(), losses, output.chosen_rewards, output.rejected_rewards)
