"""Completion log-probs from the completion positions only equal those of the full logits (llmlab/rlhf/policy.py)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from llmlab.rlhf.logprobs import completion_token_logprobs, token_entropy
from llmlab.rlhf.policy import ValueHead, chunked_logprobs, score_completions


def _batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded sequences: prompts of 3, 5 and 2 tokens, completions of 4, 2 and 6."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (3, 9), generator=g)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    for row, (start, end) in enumerate([(3, 7), (5, 7), (2, 8)]):
        mask[row, start:end] = True
        ids[row, end:] = 3  # padding after the sequence
    return ids, mask


def test_equals_full_logits(tiny_model, tiny_tok) -> None:
    """Same log-probs (and entropies) as `completion_token_logprobs` on the model's full (B, T, V) logits, at
    temperature 1 and 0.7: only the vocabulary projection is restricted to the completion positions."""
    ids, mask = _batch(len(tiny_tok))
    with torch.no_grad():
        logits = tiny_model(input_ids=ids).logits
        for temperature in (1.0, 0.7):
            expected, shifted = completion_token_logprobs(logits, ids, mask, temperature)
            scores = score_completions(tiny_model, ids, mask, temperature, entropy=True)
            assert torch.equal(scores.mask, shifted)
            assert_close(scores.logprobs, expected)
            entropy = token_entropy(logits[:, :-1], shifted, temperature)
            assert scores.entropy is not None
            assert_close(scores.entropy, entropy)
            lean = score_completions(tiny_model, ids, mask, temperature)  # no entropy: the chunked path
            assert_close(lean.logprobs, expected)
    assert_close(scores.sequence_logprobs(), expected.sum(dim=1))


def test_value_head_reads_the_hidden_state_before_each_token(tiny_model, tiny_tok) -> None:
    """V_t = w·h_{t-1} + b at the completion positions, 0 elsewhere; a fresh head is 0 everywhere."""
    ids, mask = _batch(len(tiny_tok))
    head = ValueHead(64)
    with torch.no_grad():
        assert torch.equal(
            score_completions(tiny_model, ids, mask, value_head=head).values, torch.zeros(3, 8)
        )
        torch.nn.init.normal_(head.summary.weight)
        hidden = tiny_model.model(input_ids=ids).last_hidden_state[:, :-1]  # (B, T-1, H)
        expected = (head(hidden).squeeze(-1) * mask[:, 1:]).float()
        assert_close(score_completions(tiny_model, ids, mask, value_head=head).values, expected)


def test_chunked_gradients_equal_the_full_ones(tiny_model, tiny_tok) -> None:
    """The chunked, checkpointed projection (chunks of 3 of the 12 positions, the last one short) gives the
    log-probs and the gradients (to the hidden states and the head's weight) of log_softmax on the whole
    (N, V) logits; and through the whole model, `score_completions` without entropy gives the gradients of
    `completion_token_logprobs` on the full logits."""
    g = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(64, len(tiny_tok), bias=False)
    hidden = torch.randn(12, 64, generator=g, requires_grad=True)
    labels = torch.randint(0, len(tiny_tok), (12,), generator=g)
    weights = torch.randn(12, generator=g)  # a loss that weighs each position differently
    full = torch.log_softmax(head(hidden) / 0.7, dim=-1).gather(-1, labels[:, None]).squeeze(-1)
    full_grads = torch.autograd.grad((full * weights).sum(), (hidden, head.weight))
    lean = chunked_logprobs(head, hidden, labels, 0.7, chunk=3)
    lean_grads = torch.autograd.grad((lean * weights).sum(), (hidden, head.weight))
    assert_close(lean, full)
    for a, b in zip(lean_grads, full_grads, strict=True):
        assert_close(a, b)

    ids, mask = _batch(len(tiny_tok))
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    expected, _ = completion_token_logprobs(tiny_model(input_ids=ids).logits, ids, mask)
    expected_grads = torch.autograd.grad(expected.sum(), params)
    got = score_completions(tiny_model, ids, mask).logprobs
    got_grads = torch.autograd.grad(got.sum(), params)
    assert_close(got, expected)
    for a, b in zip(got_grads, expected_grads, strict=True):
        assert_close(a, b)
