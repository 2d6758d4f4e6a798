"""Per-token and per-sequence log-probabilities from a causal LM's logits, with masks: the shared input of
the reward, DPO and PPO losses.

    log pi(y_t | x, y_<t) = logits[t-1, y_t] - logsumexp(logits[t-1, :])          (position t-1 predicts t)
    log pi(y | x)         = sum_t mask_t * log pi(y_t | x, y_<t)                   (mask: completion tokens)
    H_t                   = logsumexp(logits_t) - sum_v softmax(logits_t)_v * logits_t,v   (entropy, nats)

The logits are scored in float32 whatever their dtype (bf16 log-softmax loses about 3 digits), and a
`temperature` divides them first, as at sampling time (PPO scores rollouts under the temperature it sampled
with). Masked positions are exactly 0, so sums need no second mask.
Matches trl's `selective_log_softmax`, `entropy_from_logits` and the per-token log-probs of its fused LM head
(`add_fused_lm_head`, used by `DPOTrainer`) on the same logits.
Parity: tests/rlhf/test_logprobs.py.
"""

from __future__ import annotations

import torch


def token_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """log softmax(logits / temperature) gathered at `labels`, 0 where `mask` is false.

    Args:
        logits: (B, T, V), already aligned with `labels` (row t scores label t).
        labels: (B, T) token ids; any value where `mask` is false (e.g. -100 or padding).
        mask: (B, T) bool or 0/1; None scores every position.
        temperature: > 0.

    Returns:
        (B, T) float32 log-probabilities.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    safe = labels if mask is None else labels.masked_fill(~mask.bool(), 0)
    logp = torch.empty(safe.shape, dtype=torch.float32, device=logits.device)
    for row in range(logits.shape[0]):  # one row at a time: the float32 copy of (T, V) is the peak
        scaled = logits[row].float() / temperature  # (T, V)
        chosen = scaled.gather(-1, safe[row].clamp(min=0).unsqueeze(-1)).squeeze(-1)
        logp[row] = chosen - torch.logsumexp(scaled, dim=-1)
    return logp if mask is None else logp.masked_fill(~mask.bool(), 0.0)


def shift_for_next_token(
    logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align a causal LM's outputs with its targets: logits[:, :-1] predict input_ids[:, 1:].

    Args:
        logits: (B, T, V) for the whole sequence (prompt + completion).
        input_ids: (B, T).
        mask: (B, T), true on the tokens to score (the completion), false on the prompt and padding.

    Returns:
        (logits (B, T-1, V), labels (B, T-1), mask (B, T-1)).
    """
    return logits[:, :-1], input_ids[:, 1:], mask[:, 1:].bool()


def completion_token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of the completion tokens of whole sequences: ((B, T-1) log-probs, (B, T-1) mask)."""
    shifted, labels, mask = shift_for_next_token(logits, input_ids, completion_mask)
    return token_logprobs(shifted, labels, mask, temperature), mask


def sequence_logprobs(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    average: bool = False,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log pi(completion | prompt) for each sequence: the sum (or, with `average`, the mean) of its completion
    tokens' log-probs. (B,) float32. A row with no completion token gives 0."""
    logp, mask = completion_token_logprobs(logits, input_ids, completion_mask, temperature)
    total = logp.sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1) if average else total


def token_entropy(
    logits: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """Entropy in nats of each position's next-token distribution: (B, T) float32, 0 where `mask` is false."""
    scaled = logits.float() / temperature
    logp = torch.log_softmax(scaled, dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return entropy if mask is None else entropy.masked_fill(~mask.bool(), 0.0)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of `values` where `mask` is true (over `dim`, or everything)."""
    kept = values * mask.to(values.dtype)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is true, as trl's `masked_mean`: sum(values * mask) / sum(mask).

    An all-false mask gives NaN, as in trl; callers that can meet one must check first.
    """
    weights = mask.to(values.dtype)
    if dim is None:
        return (values * weights).sum() / weights.sum()
    return (values * weights).sum(dim=dim) / weights.sum(dim=dim)
