"""The reward model's pairwise loss: Bradley-Terry on scalar scores (Christiano et al., 2017, arXiv:1706.03741;
InstructGPT, Ouyang et al., 2022, arXiv:2203.02155, eq. 1).

    loss = -mean log sigma(r(x, y_chosen) - r(x, y_rejected) - m)

The margin m (0 by default) asks the chosen score to win by at least m, as Llama 2 does with the rating gap
(Touvron et al., 2023, arXiv:2307.09288, eq. 2). `centered_pairwise_loss` adds eta * mean((r_c + r_r)^2),
which keeps the scores near zero (Eisenstein et al., 2023, arXiv:2312.09244).
InstructGPT averages over all K-choose-2 pairs of a prompt in one batch element; here every pair is its own
element and the mean runs over pairs, as in trl.
Matches trl's `RewardTrainer.compute_loss` (margin and `center_rewards_coefficient`).
Parity: tests/rlhf/test_reward_loss.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

RewardLoss = Callable[..., torch.Tensor]


def pairwise_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    """-mean log sigma(r_chosen - r_rejected - margin).

    Args:
        chosen_rewards: (B,) scores of the preferred completions.
        rejected_rewards: (B,) scores of the other completions.
        margin: (B,) or a number; None or 0 for the plain Bradley-Terry loss.

    Returns:
        The scalar loss.
    """
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def centered_pairwise_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float = 0.01,
) -> torch.Tensor:
    """`pairwise_loss` + center_coef * mean((r_chosen + r_rejected)^2) (trl's `center_rewards_coefficient`)."""
    penalty = ((chosen_rewards + rejected_rewards) ** 2).mean()
    return pairwise_loss(chosen_rewards, rejected_rewards, margin) + center_coef * penalty


REWARD_LOSSES: dict[str, RewardLoss] = {"pairwise": pairwise_loss, "centered": centered_pairwise_loss}


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs whose chosen completion scores higher; an exact tie counts one half.

    trl counts a tie as wrong; one half keeps a model that scores everything equally at chance (0.5), which
    is what an untrained reward model's accuracy is compared with.
    """
    wins = (chosen_rewards > rejected_rewards).float()
    ties = (chosen_rewards == rejected_rewards).float()
    return float((wins + 0.5 * ties).mean())
