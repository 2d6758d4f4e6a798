"""Per-token and sequence log-probs and entropy equal trl's on the same logits (trl must be installed: the
parity tests fail, not skip, without it)."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from llmlab.rlhf.logprobs import (
    completion_token_logprobs,
    masked_mean,
    sequence_logprobs,
    token_entropy,
    token_logprobs,
)


def _batch(seed: int = 0, B: int = 3, T: int = 7, V: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * 3
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) > 0.3
    return logits, labels, mask


def test_token_logprobs_match_trl_selective_log_softmax() -> None:
    from trl.trainer.utils import selective_log_softmax

    logits, labels, mask = _batch()
    for temperature in (1.0, 0.7):
        ours = token_logprobs(logits, labels, mask, temperature)
        theirs = selective_log_softmax(logits, labels, temperature=temperature, row_mask=mask)
        assert_close(ours, theirs)


def test_bf16_logits_are_scored_in_float32() -> None:
    """trl's bf16 path takes log-softmax in bf16 (about 3 digits); ours equals the float32 computation."""
    logits, labels, mask = _batch(1)
    low = logits.bfloat16()
    expected = (
        torch.log_softmax(low.float(), -1).gather(-1, labels[..., None]).squeeze(-1).masked_fill(~mask, 0)
    )
    assert token_logprobs(low, labels, mask).dtype == torch.float32
    assert_close(token_logprobs(low, labels, mask), expected)


def test_hand_derived_uniform_distribution() -> None:
    """Equal logits over V = 4 tokens: every token has log-prob log(1/4) = -1.386294; a 3-token completion
    sums to 3 log(1/4) = -4.158883, and its mean is log(1/4). Entropy of a uniform distribution is log 4."""
    logits = torch.zeros(1, 5, 4)
    ids = torch.tensor([[0, 1, 2, 3, 0]])
    completion = torch.tensor([[False, False, True, True, True]])  # the prompt is tokens 0-1
    assert_close(sequence_logprobs(logits, ids, completion), torch.tensor([3 * math.log(0.25)]))
    assert_close(sequence_logprobs(logits, ids, completion, average=True), torch.tensor([math.log(0.25)]))
    assert_close(token_entropy(logits), torch.full((1, 5), math.log(4)))


def test_entropy_matches_trl() -> None:
    from trl.trainer.utils import entropy_from_logits

    logits, _, mask = _batch(2)
    assert_close(token_entropy(logits), entropy_from_logits(logits))
    assert_close(token_entropy(logits, mask), entropy_from_logits(logits).masked_fill(~mask, 0))


def test_sequence_logprobs_match_trl_fused_lm_head(tiny_tok) -> None:
    """trl's DPOTrainer scores completions with its fused LM head (labels -100 on the prompt); our
    log-probs from the plain forward's logits and the completion mask are the same numbers."""
    from tiny import tiny_llama
    from trl.trainer.utils import add_fused_lm_head

    model = tiny_llama(len(tiny_tok), seed=3)
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(4, len(tiny_tok), (2, 9), generator=g)
    completion = torch.zeros(2, 9, dtype=torch.bool)
    completion[0, 4:] = True
    completion[1, 6:] = True
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        add_fused_lm_head(model)
        fused = model(input_ids=ids, labels=ids.masked_fill(~completion, -100), fused_lm_head=True)
    ours, mask = completion_token_logprobs(logits, ids, completion)
    assert_close(ours, fused.log_probs.masked_fill(~mask, 0))
    assert_close(sequence_logprobs(logits, ids, completion), fused.log_probs.sum(dim=1))


def test_masked_mean_hand_derived() -> None:
    """values 1, 2, 3, 4 with the mask on 2 and 4: (2 + 4) / 2 = 3; per row: [2, 4]."""
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[False, True], [False, True]])
    assert float(masked_mean(values, mask)) == 3.0
    assert masked_mean(values, mask, dim=1).tolist() == [2.0, 4.0]
