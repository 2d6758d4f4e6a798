"""PPO's losses for language models: whitening, GAE, the clipped policy and value losses, entropy.

Proximal Policy Optimization (Schulman et al., 2017, arXiv:1707.06347), as used for RLHF by Ziegler et al.
(2019, arXiv:1909.08593) and InstructGPT; each response token is one action, the KL-penalised per-token
rewards come from llmlab/rlhf/kl.py.

    GAE (Schulman et al., 2015, arXiv:1506.02438, eq. 16):
        delta_t = r_t + gamma * V_{t+1} - V_t,   A_t = delta_t + gamma * lambda * A_{t+1},   returns_t = A_t + V_t
        (V and A are 0 after a response's last token: the episode ends there)
    policy (PPO eq. 7):  L = mean_t max(-A_t * rho_t, -A_t * clip(rho_t, 1 - eps, 1 + eps)),
                         rho_t = exp(log pi(a_t) - log pi_old(a_t))
    value (clipped like PPO2's baselines): L_V = 0.5 * mean_t max((V_t - R_t)^2, (clip(V_t, V_old - c, V_old + c) - R_t)^2)
    whiten: (x - mean) / sqrt(var + 1e-8) over the masked tokens, var with Bessel's correction; rewards are
            whitened without moving their mean (shift_mean=False), advantages with it.

Every mean runs over the response tokens of the batch (the mask). Advantages and returns are 0 outside it.
Matches trl's `masked_whiten`, `PPOTrainer.compute_advantages` and `PPOTrainer.loss` (trl <= 0.11,
https://github.com/huggingface/trl/blob/v0.11.2/trl/trainer/ppo_trainer.py and trl/core.py) and the same formulas
in trl's experimental PPO trainer (trl/experimental/ppo/ppo_trainer.py). trl 1.16 does not ship them, so the
test transcribes the published code. Parity: tests/rlhf/test_ppo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmlab.errors import ConfigError
from llmlab.rlhf.logprobs import masked_mean, token_entropy


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked entries; with `unbiased`, Bessel's correction n / (n - 1) as in trl."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if int(count) < 2:
            raise ValueError(
                f"whitening needs at least 2 tokens under the mask, got {int(count)}; use a larger batch"
            )
        variance = variance * count / (count - 1)
    return variance


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / sqrt(var + 1e-8) over the masked entries; `shift_mean=False` adds the mean back."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def whiten_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token rewards scaled to unit variance over the response tokens, mean kept, 0 outside the mask."""
    return whiten(rewards, mask, shift_mean=False).masked_fill(~mask.bool(), 0.0)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimates and returns (targets of the value head).

    Args:
        rewards: (B, T) per-token rewards (KL penalty, plus the score on the last token).
        values: (B, T) the value head's estimates at rollout time.
        mask: (B, T) true on response tokens, right-padded.
        gamma: discount; 1 is usual for text.
        lam: GAE's lambda: 1 gives Monte-Carlo returns minus V, 0 the one-step TD error.

    Returns:
        (advantages (B, T), returns (B, T)), unwhitened, 0 outside the mask.
    """
    if not 0 <= gamma <= 1 or not 0 <= lam <= 1:
        raise ConfigError(f"--gamma and --lam must be in [0, 1], got {gamma} and {lam}")
    weights = mask.to(values.dtype)
    values, rewards = values * weights, rewards * weights
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    steps = values.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    returns = advantages + values
    return advantages * weights, returns * weights


@dataclass(frozen=True)
class PolicyLoss:
    """The clipped surrogate and what to log with it."""

    loss: torch.Tensor
    """Scalar, to minimise."""
    clip_fraction: torch.Tensor
    """Share of tokens where the clipped term was the larger (their gradient is zero)."""
    approx_kl: torch.Tensor
    """0.5 * mean (log pi - log pi_old)^2: how far this update moved the policy."""
    ratio: torch.Tensor
    """Mean importance ratio pi / pi_old over the tokens."""


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> PolicyLoss:
    """PPO-clip on per-token log-probs: (B, T) each; `old_logprobs` and `advantages` carry no gradient."""
    if not clip_range > 0:
        raise ConfigError(f"--clip-range must be > 0, got {clip_range}")
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = 0.5 * masked_mean(log_ratio**2, mask)
        mean_ratio = masked_mean(ratio, mask)
    return PolicyLoss(loss, clip_fraction, approx_kl, mean_ratio)


@dataclass(frozen=True)
class ValueLoss:
    """The clipped value loss and its clip fraction."""

    loss: torch.Tensor
    clip_fraction: torch.Tensor


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float = 0.2,
) -> ValueLoss:
    """0.5 * mean max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2): (B, T) each."""
    if not clip_range_value > 0:
        raise ConfigError(f"--clip-range-value must be > 0, got {clip_range_value}")
    clipped_values = torch.clamp(values, old_values - clip_range_value, old_values + clip_range_value)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return ValueLoss(loss, clip_fraction)


def mean_entropy(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean entropy (nats) of the policy's next-token distributions over the response tokens; logits (B, T, V)
    aligned with the mask. Logged to watch for collapse; subtract coef * it from the loss for a bonus."""
    return masked_mean(token_entropy(logits, temperature=temperature), mask)
