"""The pairwise reward-model loss equals trl's `RewardTrainer.compute_loss` on identical scores (trl's own
method runs on a stand-in trainer and a model that returns our scores), plus hand-derived cases."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from llmlab.rlhf.reward import REWARD_LOSSES, centered_pairwise_loss, pairwise_accuracy, pairwise_loss


def _trl_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin=None, center=None) -> torch.Tensor:
    from trl import RewardTrainer

    scores = torch.cat([chosen, rejected])[:, None]  # (2B, 1): trl's batch is [chosen; rejected]
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        args=SimpleNamespace(center_rewards_coefficient=center),
        accelerator=SimpleNamespace(gather_for_metrics=lambda x: x, gather=lambda x: x),
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )  # fmt: skip
    inputs = {"attention_mask": torch.ones(len(scores), 3, dtype=torch.long)}
    if margin is not None:
        inputs["margin"] = margin
    return RewardTrainer.compute_loss(trainer, lambda **_: SimpleNamespace(logits=scores), inputs)


@pytest.mark.parametrize("seed", range(3))
def test_matches_trl_reward_trainer(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    chosen, rejected, margin = (
        torch.randn(6, generator=g) * 2,
        torch.randn(6, generator=g) * 2,
        torch.rand(6, generator=g),
    )
    assert_close(pairwise_loss(chosen, rejected), _trl_loss(chosen, rejected))
    assert_close(pairwise_loss(chosen, rejected, margin), _trl_loss(chosen, rejected, margin))
    assert_close(
        centered_pairwise_loss(chosen, rejected, margin, center_coef=0.05),
        _trl_loss(chosen, rejected, margin, center=0.05),
    )


def test_hand_derived_values() -> None:
    """Equal scores: -log sigma(0) = log 2 = 0.693147. Scores 2 and 0: -log sigma(2) = log(1 + e^-2) = 0.126928.
    With margin 2 the same pair costs log 2 again. Centred with eta = 0.5 on scores 2 and 0:
    0.126928 + 0.5 * (2 + 0)^2 = 2.126928."""
    assert_close(pairwise_loss(torch.tensor([1.0]), torch.tensor([1.0])), torch.tensor(math.log(2)))
    assert_close(
        pairwise_loss(torch.tensor([2.0]), torch.tensor([0.0])), torch.tensor(math.log1p(math.exp(-2)))
    )
    assert_close(pairwise_loss(torch.tensor([2.0]), torch.tensor([0.0]), 2.0), torch.tensor(math.log(2)))
    assert_close(
        centered_pairwise_loss(torch.tensor([2.0]), torch.tensor([0.0]), center_coef=0.5),
        torch.tensor(math.log1p(math.exp(-2)) + 2.0),
    )
    assert set(REWARD_LOSSES) == {"pairwise", "centered"}


def test_accuracy_counts_ties_as_half() -> None:
    """Pairs (3 > 1) right, (0 < 2) wrong, (5 = 5) tie: (1 + 0 + 0.5) / 3 = 0.5."""
    assert pairwise_accuracy(torch.tensor([3.0, 0.0, 5.0]), torch.tensor([1.0, 2.0, 5.0])) == 0.5
    assert pairwise_accuracy(torch.zeros(10), torch.zeros(10)) == 0.5
