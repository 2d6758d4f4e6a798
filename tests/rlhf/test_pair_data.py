"""Preference pairs as model input: DPO sides rendered as generation renders them, reward-model texts, batches."""

from __future__ import annotations

import torch

from llmlab.data.tokenize import encode_prompt
from llmlab.rlhf.completions import render_prompt
from llmlab.rlhf.pair_data import PairBatches, collate_pairs, encode_dpo_pair, encode_for_reward
from llmlab.rlhf.preferences import PreferencePair

PAIR = PreferencePair("What is the capital of France?", "Paris.", "The capital of Italy is Rome.")


def test_dpo_side_is_the_generation_prompt_then_the_completion_and_stop(tiny_tok) -> None:
    """The prompt tokens are exactly what the engine is fed (the chat template's user turn); the completion
    mask covers the completion and its stop token (<|im_end|>), nothing of the prompt."""
    stop = tiny_tok.eos_token_id
    encoded = encode_dpo_pair(tiny_tok, PAIR, {stop}, seq_len=200)
    assert encoded is not None
    prompt = encode_prompt(tiny_tok, render_prompt(tiny_tok, PAIR.prompt))
    for side, text in ((encoded.chosen, PAIR.chosen), (encoded.rejected, PAIR.rejected)):
        assert side.input_ids[: len(prompt)] == prompt
        assert side.completion_mask is not None
        assert not any(side.completion_mask[: len(prompt)])
        learned = [t for t, m in zip(side.input_ids, side.completion_mask, strict=True) if m]
        assert learned[-1] == stop
        assert tiny_tok.decode(learned[:-1]) == text


def test_dpo_pair_left_out_when_the_prompt_fills_seq_len(tiny_tok) -> None:
    prompt_tokens = len(encode_prompt(tiny_tok, render_prompt(tiny_tok, PAIR.prompt)))
    assert encode_dpo_pair(tiny_tok, PAIR, {2}, seq_len=prompt_tokens) is None
    assert encode_dpo_pair(tiny_tok, PAIR, {2}, seq_len=prompt_tokens + 1) is not None


def test_reward_text_of_a_decoder_ends_with_eos_and_keeps_the_end(tiny_tok) -> None:
    side = encode_for_reward(tiny_tok, "decoder-only", "Q", "A long answer about Paris", 200)
    assert side.input_ids[-1] == tiny_tok.eos_token_id
    assert tiny_tok.decode(side.input_ids[:-1]) == "Q\n\nA long answer about Paris"
    cut = encode_for_reward(tiny_tok, "decoder-only", "Q", "A long answer about Paris", 4)
    assert cut.input_ids == side.input_ids[-4:]
    alone = encode_for_reward(tiny_tok, "decoder-only", "", "Paris", 200)  # no prompt: the completion alone
    assert tiny_tok.decode(alone.input_ids[:-1]) == "Paris"


def test_batches_hold_chosen_rows_first_right_padded(tiny_tok) -> None:
    pairs = [encode_dpo_pair(tiny_tok, PAIR, {2}, 200), encode_dpo_pair(tiny_tok, PAIR, {2}, 200)]
    assert pairs[0] is not None and pairs[1] is not None
    pairs[0].ref_logps, pairs[1].ref_logps = (-1.0, -2.0), (-3.0, -4.0)
    batch = collate_pairs(pairs, pad_id=3)
    width = max(len(pairs[0].chosen.input_ids), len(pairs[0].rejected.input_ids))
    assert batch["input_ids"].shape == (4, width)
    assert torch.equal(batch["ref_logps"], torch.tensor([-1.0, -3.0, -2.0, -4.0]))
    n = len(pairs[0].chosen.input_ids)
    assert batch["input_ids"][0, :n].tolist() == pairs[0].chosen.input_ids
    assert batch["attention_mask"][0].sum() == n and set(batch["input_ids"][0, n:].tolist()) <= {3}
    source = PairBatches([pairs[0], pairs[1], pairs[0]], batch_size=2, pad_id=3, seed=1)
    assert len(source) == 2 and sorted(source.order(0)) == [0, 1, 2] and source.order(5) == source.order(5)
    assert [b["input_ids"].shape[0] for b in source.batches(0)] == [4, 2]
    assert [b["input_ids"].shape[0] for b in source.batches(0, start=1)] == [2]
