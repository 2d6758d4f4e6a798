"""PPO maths (whitening, GAE, clipped policy and value losses, KL penalty and controllers) equal trl's
published formulas, plus hand-derived cases.

trl 1.16 (the installed reference) no longer ships PPO, so the reference functions below transcribe trl's
published code, line for line, from:
- trl <= 0.11 `trl/core.py` (masked_mean, masked_var, masked_whiten) and `trl/trainer/ppo_trainer.py`
  (`compute_rewards`, `_kl_penalty`, `compute_advantages`, `loss`), and `trl/trainer/utils.py`
  (`AdaptiveKLController`): https://github.com/huggingface/trl/blob/v0.11.2/trl/trainer/ppo_trainer.py
- trl's experimental PPO trainer (k1/k3 estimators, reward whitening):
  https://github.com/huggingface/trl/blob/main/trl/experimental/ppo/ppo_trainer.py ("4. compute rewards",
  "5. whiten rewards").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from llmlab.rlhf.kl import (
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    clip_scores,
    kl_penalized_rewards,
)
from llmlab.rlhf.ppo import (
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    mean_entropy,
    whiten,
    whiten_rewards,
)

# ---- trl's published code, transcribed (reference only) ----


def trl_masked_mean(values, mask, axis=None):
    if axis is not None:
        return (values * mask).sum(axis=axis) / mask.sum(axis=axis)
    return (values * mask).sum() / mask.sum()


def trl_masked_var(values, mask, unbiased=True):
    mean = trl_masked_mean(values, mask)
    centered_values = values - mean
    variance = trl_masked_mean(centered_values**2, mask)
    if unbiased:
        mask_sum = mask.sum()
        bessel_correction = mask_sum / (mask_sum - 1)
        variance = variance * bessel_correction
    return variance


def trl_masked_whiten(values, mask, shift_mean=True):
    mean, var = trl_masked_mean(values, mask), trl_masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened


def trl_kl_penalty(logprob, ref_logprob, kl_penalty):
    if kl_penalty == "kl":
        return logprob - ref_logprob
    if kl_penalty == "abs":
        return (logprob - ref_logprob).abs()
    if kl_penalty == "mse":
        return 0.5 * (logprob - ref_logprob).square()
    logr = ref_logprob - logprob  # experimental trainer: k1 = -logr, k3 = (exp(logr) - 1) - logr
    return -logr if kl_penalty == "k1" else (logr.exp() - 1) - logr


def trl_compute_rewards(scores, logprobs, ref_logprobs, masks, kl_coef, kl_penalty):
    rewards = []
    for score, logprob, ref_logprob, mask in zip(scores, logprobs, ref_logprobs, masks, strict=True):
        kl = trl_kl_penalty(logprob, ref_logprob, kl_penalty)
        non_score_reward = -kl_coef * kl
        reward = non_score_reward.clone()
        last_non_masked_index = mask.nonzero()[-1]
        reward[last_non_masked_index] += score
        rewards.append(reward)
    return torch.stack(rewards)


def trl_compute_advantages(values, rewards, mask, gamma, lam):
    lastgaelam = 0
    advantages_reversed = []
    gen_len = rewards.shape[-1]
    values = values * mask
    rewards = rewards * mask
    for t in reversed(range(gen_len)):
        nextvalues = values[:, t + 1] if t < gen_len - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1]).transpose(0, 1)
    returns = advantages + values
    advantages = trl_masked_whiten(advantages, mask)
    return values, advantages, returns


def trl_loss(old_logprobs, values, logprobs, vpreds, mask, advantages, returns, cliprange, cliprange_value):
    vpredclipped = torch.max(
        torch.min(vpreds, values + cliprange_value), values - cliprange_value
    )  # clip_by_value
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    vf_loss = 0.5 * trl_masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    vf_clipfrac = trl_masked_mean(torch.gt(vf_losses2, vf_losses1).float(), mask)
    ratio = torch.exp(logprobs - old_logprobs)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = trl_masked_mean(torch.max(pg_losses, pg_losses2), mask)
    pg_clipfrac = trl_masked_mean(torch.gt(pg_losses2, pg_losses).float(), mask)
    approxkl = 0.5 * trl_masked_mean((logprobs - old_logprobs) ** 2, mask)
    return pg_loss, vf_loss, pg_clipfrac, vf_clipfrac, approxkl


class TrlAdaptiveKLController:
    def __init__(self, init_kl_coef, target, horizon):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current, n_steps):
        target = self.target
        proportional_error = np.clip(current / target - 1, -0.2, 0.2)
        mult = 1 + proportional_error * n_steps / self.horizon
        self.value *= mult


# ---- the batch: right-padded responses of different lengths ----

B, T = 4, 8


def _rollout(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = [8, 5, 3, 6]
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    logprobs = -torch.rand(B, T, generator=g) * 2
    ref_logprobs = logprobs + torch.randn(B, T, generator=g) * 0.3
    values = torch.randn(B, T, generator=g)
    scores = torch.randn(B, generator=g) * 2
    return mask, logprobs, ref_logprobs, values, scores


@pytest.mark.parametrize(
    ("ours", "theirs"), [("k1", "kl"), ("k1", "k1"), ("k2", "mse"), ("k3", "k3"), ("abs", "abs")]
)
def test_kl_penalized_rewards_match_trl(ours: str, theirs: str) -> None:
    mask, logprobs, ref_logprobs, _, scores = _rollout()
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.05, estimator=ours)
    expected = trl_compute_rewards(scores, logprobs, ref_logprobs, mask, 0.05, theirs)
    assert_close(rewards[mask], expected[mask])
    assert_close(kl, trl_kl_penalty(logprobs, ref_logprobs, theirs).masked_fill(~mask, 0))
    assert float(rewards[~mask].abs().sum()) == 0.0


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (1.0, 0.0)])
def test_gae_and_advantage_whitening_match_trl(gamma: float, lam: float) -> None:
    mask, logprobs, ref_logprobs, values, scores = _rollout(1)
    rewards, _ = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, 0.1)
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    _, expected_adv, expected_returns = trl_compute_advantages(values, rewards, mask.float(), gamma, lam)
    assert_close(whiten(advantages, mask)[mask], expected_adv[mask])
    assert_close(returns[mask], expected_returns[mask])


def test_reward_whitening_matches_trl_experimental() -> None:
    """trl: rewards = masked_whiten(rewards, mask, shift_mean=False); rewards.masked_fill(~mask, 0)."""
    mask, logprobs, ref_logprobs, _, scores = _rollout(2)
    rewards, _ = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, 0.1)
    expected = trl_masked_whiten(rewards, mask, shift_mean=False).masked_fill(~mask, 0)
    assert_close(whiten_rewards(rewards, mask), expected)


@pytest.mark.parametrize("seed", range(3))
def test_policy_and_value_losses_match_trl(seed: int) -> None:
    mask, old_logprobs, _, old_values, _ = _rollout(seed)
    g = torch.Generator().manual_seed(100 + seed)
    logprobs = old_logprobs + torch.randn(B, T, generator=g) * 0.3  # ratios well outside 1 +- 0.2
    vpreds = old_values + torch.randn(B, T, generator=g) * 0.5
    advantages, returns = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    pg_loss, vf_loss, pg_clipfrac, vf_clipfrac, approxkl = trl_loss(
        old_logprobs, old_values, logprobs, vpreds, mask.float(), advantages, returns, 0.2, 0.2
    )
    policy = clipped_policy_loss(logprobs, old_logprobs, advantages, mask, 0.2)
    value = clipped_value_loss(vpreds, old_values, returns, mask, 0.2)
    assert_close(policy.loss, pg_loss)
    assert_close(policy.clip_fraction, pg_clipfrac)
    assert_close(policy.approx_kl, approxkl)
    assert_close(value.loss, vf_loss)
    assert_close(value.clip_fraction, vf_clipfrac)
    assert 0 < float(policy.clip_fraction) < 1 and 0 < float(value.clip_fraction) < 1  # both branches seen


def test_gae_hand_derived() -> None:
    """Rewards 0, 0, 1; values 0.5 each; gamma 1.
    lambda 1: deltas (0, 0, 0.5) summed from the end -> A = (0.5, 0.5, 0.5), returns = A + V = (1, 1, 1),
    the Monte-Carlo return. lambda 0: A = deltas = (0, 0, 0.5), returns = (0.5, 0.5, 1).
    A fourth, padded position stays 0 and does not leak into the third."""
    rewards = torch.tensor([[0.0, 0.0, 1.0, 7.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 9.0]])
    mask = torch.tensor([[True, True, True, False]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert adv.tolist() == [[0.5, 0.5, 0.5, 0.0]] and ret.tolist() == [[1.0, 1.0, 1.0, 0.0]]
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.0)
    assert adv.tolist() == [[0.0, 0.0, 0.5, 0.0]] and ret.tolist() == [[0.5, 0.5, 1.0, 0.0]]


def test_policy_and_value_loss_hand_derived() -> None:
    """Two tokens, both with ratio exp(log 1.5) = 1.5, epsilon 0.2.
    Advantage +1: max(-1.5, -1.2) = -1.2 (clipped: the update stops helping). Advantage -1: max(1.5, 1.2) = 1.5.
    Loss (-1.2 + 1.5) / 2 = 0.15, clip fraction 1/2, approx KL 0.5 * log(1.5)^2 = 0.0822025.
    Value: V = 1, V_old = 0.5, R = 2, c = 0.2: clipped V 0.7; max((1-2)^2, (0.7-2)^2) = 1.69; loss 0.845."""
    old = torch.log(torch.tensor([[1.0, 1.0]]))
    new = old + torch.log(torch.tensor(1.5))
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = clipped_policy_loss(new, old, torch.tensor([[1.0, -1.0]]), mask, 0.2)
    assert_close(out.loss, torch.tensor(0.15))
    assert_close(out.clip_fraction, torch.tensor(0.5))
    assert_close(out.approx_kl, torch.tensor(0.5 * np.log(1.5) ** 2, dtype=torch.float32))
    value = clipped_value_loss(
        torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[2.0]]), mask[:, :1]
    )
    assert_close(value.loss, torch.tensor(0.845))
    assert_close(value.clip_fraction, torch.tensor(1.0))


def test_kl_estimators_hand_derived() -> None:
    """log pi = log 0.5, log ref = log 0.25, so log ratio r = log 2 = 0.693147:
    k1 = 0.693147, k2 = 0.5 r^2 = 0.240227, k3 = exp(-r) - 1 + r = 0.5 - 1 + 0.693147 = 0.193147, abs = 0.693147.
    Rewards with beta 0.1 and score 3 on a 2-token response: (-0.0693147, 3 - 0.0693147)."""
    logp, ref = torch.log(torch.tensor([[0.5, 0.5]])), torch.log(torch.tensor([[0.25, 0.25]]))
    expected = {"k1": 0.693147, "k2": 0.240227, "k3": 0.193147, "abs": 0.693147}
    for name, value in expected.items():
        assert_close(KL_ESTIMATORS[name](logp, ref), torch.full((1, 2), value), atol=1e-6, rtol=0)
    rewards, _ = kl_penalized_rewards(torch.tensor([3.0]), logp, ref, torch.ones(1, 2, dtype=torch.bool), 0.1)
    assert_close(rewards, torch.tensor([[-0.0693147, 3 - 0.0693147]]))


def test_adaptive_kl_controller_matches_trl_and_hand_derived() -> None:
    """beta 0.2, target 6, horizon 10000, 256 rollouts a batch. KL 12 is 100% over target, clipped to +20%:
    beta *= 1 + 0.2 * 256 / 10000 = 1.00512 -> 0.201024. KL 3 (50% under) is clipped to -20%: beta *= 0.99488."""
    ours, theirs = AdaptiveKLController(0.2, 6.0, 10000), TrlAdaptiveKLController(0.2, 6.0, 10000)
    ours.update(12.0, 256)
    assert ours.value == pytest.approx(0.201024, abs=1e-12)
    ours.update(3.0, 256)
    assert ours.value == pytest.approx(0.201024 * 0.99488, abs=1e-12)
    ours = AdaptiveKLController(0.2, 6.0, 10000)
    for kl in [12.0, 3.0, 6.5, 5.0, 0.1, 30.0]:
        ours.update(kl, 64)
        theirs.update(kl, 64)
        assert ours.value == pytest.approx(float(theirs.value), rel=1e-12)
    restored = AdaptiveKLController(1.0, 1.0, 1)
    restored.load_state_dict(ours.state_dict())
    assert restored.value == ours.value and restored.target == 6.0 and restored.horizon == 10000
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 256)
    assert fixed.value == 0.05


def test_clip_scores_and_entropy() -> None:
    assert clip_scores(torch.tensor([-9.0, 0.5, 9.0]), 5.0).tolist() == [-5.0, 0.5, 5.0]
    logits = torch.zeros(1, 3, 8)  # uniform over 8 tokens: entropy log 8 at every position
    assert_close(
        mean_entropy(logits, torch.tensor([[True, True, False]])),
        torch.tensor(np.log(8), dtype=torch.float32),
    )
