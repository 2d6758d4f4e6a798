"""The KL penalty of RLHF's PPO: per-token estimators, the penalised rewards, and the controllers of its weight.

The policy is rewarded for the reward model's score and penalised for drifting from the frozen reference
(Ziegler et al., 2019, arXiv:1909.08593, eq. 1; Stiennon et al., 2020, arXiv:2009.01325, eq. 2):

    R(x, y) = r(x, y) - beta * KL(pi(.|x) || ref(.|x)),   spread over tokens:
    reward_t = -beta * kl_t  (+ r(x, y) on the last response token)

with kl_t one of Schulman's estimators of KL from samples y ~ pi (http://joschu.net/blog/kl-approx.html),
where log_ratio = log pi(y_t) - log ref(y_t):

    k1   log_ratio                          unbiased, high variance, can be negative (trl "kl" / "k1")
    k2   0.5 * log_ratio^2                  biased, low variance (trl "mse")
    k3   exp(-log_ratio) - 1 + log_ratio    unbiased, always >= 0 (trl "k3"; GRPO's per-token KL)
    abs  |log_ratio|                        (trl "abs")

beta is fixed (`FixedKLController`) or adapted towards a target KL (Ziegler et al., 2019, eq. 2):

    e_t = clip(KL_t / KL_target - 1, -0.2, 0.2),   beta_{t+1} = beta_t * (1 + e_t * n_steps / horizon)

Matches trl's `AdaptiveKLController`/`FixedKLController` and `PPOTrainer.compute_rewards` + `_kl_penalty`
(https://github.com/huggingface/trl/blob/v0.11.2/trl/trainer/utils.py and .../trl/trainer/ppo_trainer.py), and
the k1/k3 estimators of trl's experimental PPO trainer (trl/experimental/ppo/ppo_trainer.py, "compute rewards").
trl 1.16 ships neither, so the test transcribes the published formulas. Parity: tests/rlhf/test_ppo.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from llmlab.errors import ConfigError

KLEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """log pi - log ref, per token."""
    return logprobs - ref_logprobs


def k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """0.5 * (log pi - log ref)^2, per token."""
    return 0.5 * (logprobs - ref_logprobs) ** 2


def k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """exp(log ref - log pi) - 1 - (log ref - log pi), per token; >= 0."""
    log_ratio = ref_logprobs - logprobs
    return log_ratio.exp() - 1 - log_ratio


def absolute(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """|log pi - log ref|, per token."""
    return (logprobs - ref_logprobs).abs()


KL_ESTIMATORS: dict[str, KLEstimator] = {"k1": k1, "k2": k2, "k3": k3, "abs": absolute}


def kl_penalized_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef * kl_t on every response token, plus the score on the last one.

    Args:
        scores: (B,) the reward model's score of each whole response.
        logprobs: (B, T) log pi of the sampled response tokens (at rollout time).
        ref_logprobs: (B, T) log ref of the same tokens.
        mask: (B, T) true on response tokens; each row is its tokens then padding (right-padded).
        kl_coef: beta, the KL weight (a controller's `.value`).
        estimator: a key of `KL_ESTIMATORS`.

    Returns:
        (rewards (B, T), kl (B, T)), both 0 outside the mask.
    """
    if estimator not in KL_ESTIMATORS:
        raise ConfigError(f"--kl-estimator must be one of {', '.join(KL_ESTIMATORS)}, got {estimator!r}")
    mask = mask.bool()
    lengths = mask.sum(dim=-1)
    if bool((lengths == 0).any()):
        raise ValueError("a response has no tokens under the mask; drop empty responses before scoring")
    kl = KL_ESTIMATORS[estimator](logprobs, ref_logprobs).masked_fill(~mask, 0.0)
    rewards = -kl_coef * kl
    last = lengths - 1  # right padding: the last response token of each row
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards, kl


def clip_scores(scores: torch.Tensor, limit: float) -> torch.Tensor:
    """Clamp reward-model scores to [-limit, limit] before they enter PPO (one outlier cannot dominate)."""
    if not limit > 0:
        raise ConfigError(f"--reward-clip must be > 0, got {limit}")
    return scores.clamp(-limit, limit)


class FixedKLController:
    """beta stays at `kl_coef`."""

    def __init__(self, kl_coef: float):
        if not kl_coef >= 0:
            raise ConfigError(f"--kl-coef must be >= 0, got {kl_coef}")
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing changes (the same interface as the adaptive controller)."""

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """beta moves towards the value that keeps the measured KL at `target` (Ziegler et al., 2019, eq. 2)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        if not init_kl_coef > 0:
            raise ConfigError(f"--kl-coef must be > 0 for the adaptive controller, got {init_kl_coef}")
        if not target > 0:
            raise ConfigError(f"--kl-target must be > 0, got {target}")
        if not horizon > 0:
            raise ConfigError(f"--kl-horizon must be > 0, got {horizon}")
        self.value, self.target, self.horizon = float(init_kl_coef), float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """After a batch of `n_steps` rollouts whose mean KL was `current_kl`."""
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.target, self.horizon = (
            float(state["value"]),
            float(state["target"]),
            int(state["horizon"]),
        )


KL_CONTROLLERS: dict[str, type[FixedKLController] | type[AdaptiveKLController]] = {
    "fixed": FixedKLController,
    "adaptive": AdaptiveKLController,
}
