"""Preference pairs as token ids for the reward model and DPO, and their micro-batches for the training loop.

Two encodings of a pair {"prompt", "chosen", "rejected"}:

    DPO (`encode_dpo_pair`)      each completion after the prompt exactly as `llmlab feedback generate` and
                                 `llmlab generate` render it (the chat template's user turn for chat models,
                                 the text as is otherwise; llmlab.rlhf.completions.render_prompt), ended by the
                                 model's stop token; the completion mask marks the tokens whose log-probs count.
    reward model (`encode_for_reward`)
                                 decoders: "PROMPT\\n\\nCOMPLETION" (the completion alone when the prompt is
                                 empty) + EOS, scored at that last token; cut from the left when too long, so
                                 the end survives. Encoders: the tokenizer's text pair (prompt, completion) or
                                 the completion alone, cut from the end (longest side first).

A micro-batch holds B pairs as 2B rows, the chosen ones first: one forward pass scores both sides (as trl's
concatenated forward). Rows are right-padded; `attention_mask` marks real tokens.
Tests: tests/rlhf/test_pair_data.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llmlab.data.tokenize import Tokenized, encode_prompt, tokenize_segments, truncate
from llmlab.rlhf.completions import render_prompt
from llmlab.training.objective import Batch

REWARD_SEPARATOR = "\n\n"


@dataclass
class EncodedSide:
    """One completion of a pair, as model input."""

    input_ids: list[int]
    completion_mask: list[bool] | None = None
    """DPO: true on the completion tokens whose log-probs count; None for the reward model."""
    token_type_ids: list[int] | None = None
    """Encoders with a text pair: 0 on the prompt, 1 on the completion."""


@dataclass
class EncodedPair:
    chosen: EncodedSide
    rejected: EncodedSide
    source: str = ""
    ref_logps: tuple[float, float] | None = None
    """DPO: log ref(chosen | prompt), log ref(rejected | prompt), precomputed once."""

    @property
    def tokens(self) -> int:
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)


# ---- DPO ---------------------------------------------------------------------------------------------------


def encode_dpo_side(
    tokenizer: Any, prompt: str, completion: str, stops: set[int], seq_len: int, chat: bool, source: str
) -> Tokenized | None:
    """Prompt (rendered as at generation time) + completion + stop token, cut to seq_len; None when no
    completion token is left."""
    segments = [(render_prompt(tokenizer, prompt, chat), False), (completion, True)]
    return truncate(tokenize_segments(tokenizer, segments, stops, source), seq_len)


def encode_dpo_pair(
    tokenizer: Any, pair: Any, stops: set[int], seq_len: int, chat: bool = True, source: str = ""
) -> EncodedPair | None:
    """Both sides of a `PreferencePair` for DPO; None when --seq-len leaves either side no completion token."""
    sides = [
        encode_dpo_side(tokenizer, pair.prompt, text, stops, seq_len, chat, source)
        for text in (pair.chosen, pair.rejected)
    ]
    first, second = sides
    if first is None or second is None:
        return None
    chosen, rejected = (EncodedSide(s.input_ids, s.loss_mask) for s in (first, second))
    return EncodedPair(chosen, rejected, source)


# ---- reward model ------------------------------------------------------------------------------------------


def encode_for_reward(tokenizer: Any, kind: str, prompt: str, completion: str, seq_len: int) -> EncodedSide:
    """One (prompt, completion) as reward-model input (see the module docstring)."""
    if kind == "encoder-only":
        texts = (prompt, completion) if prompt else (completion,)
        enc = tokenizer(*texts, truncation=True, max_length=seq_len)
        types = enc.get("token_type_ids")
        return EncodedSide(list(enc["input_ids"]), token_type_ids=None if types is None else list(types))
    text = prompt + REWARD_SEPARATOR + completion if prompt else completion
    ids = encode_prompt(tokenizer, text)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return EncodedSide(ids[-seq_len:])


def encode_reward_pair(tokenizer: Any, kind: str, pair: Any, seq_len: int, source: str = "") -> EncodedPair:
    chosen = encode_for_reward(tokenizer, kind, pair.prompt, pair.chosen, seq_len)
    rejected = encode_for_reward(tokenizer, kind, pair.prompt, pair.rejected, seq_len)
    return EncodedPair(chosen, rejected, source)


# ---- batches -----------------------------------------------------------------------------------------------


def pad_sides(sides: Sequence[EncodedSide], pad_id: int) -> Batch:
    """Right-padded (R, T) input_ids and attention_mask, plus completion_mask / token_type_ids if the sides
    have them."""
    width = max(len(s.input_ids) for s in sides)
    rows = len(sides)
    batch: Batch = {
        "input_ids": torch.full((rows, width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((rows, width), dtype=torch.long),
    }
    if sides[0].completion_mask is not None:
        batch["completion_mask"] = torch.zeros((rows, width), dtype=torch.bool)
    if sides[0].token_type_ids is not None:
        batch["token_type_ids"] = torch.zeros((rows, width), dtype=torch.long)
    for i, side in enumerate(sides):
        n = len(side.input_ids)
        batch["input_ids"][i, :n] = torch.tensor(side.input_ids)
        batch["attention_mask"][i, :n] = 1
        if side.completion_mask is not None:
            batch["completion_mask"][i, :n] = torch.tensor(side.completion_mask)
        if side.token_type_ids is not None:
            batch["token_type_ids"][i, :n] = torch.tensor(side.token_type_ids)
    return batch


def collate_pairs(pairs: Sequence[EncodedPair], pad_id: int) -> Batch:
    """2B rows, chosen first; `ref_logps` (2B,) when precomputed; `tokens` for tokens/s."""
    batch = pad_sides([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)
    if all(p.ref_logps is not None for p in pairs):
        chosen = [p.ref_logps[0] for p in pairs if p.ref_logps is not None]
        rejected = [p.ref_logps[1] for p in pairs if p.ref_logps is not None]
        batch["ref_logps"] = torch.tensor(chosen + rejected, dtype=torch.float32)
    batch["tokens"] = torch.tensor(sum(p.tokens for p in pairs))
    return batch


class PairBatches:
    """Pairs `batch_size` at a time, shuffled per epoch by seed (or in order): a `BatchSource`."""

    def __init__(
        self, pairs: Sequence[EncodedPair], batch_size: int, pad_id: int, seed: int = 0, shuffle: bool = True
    ):
        if not pairs:
            raise ValueError("no pairs to batch")
        self.pairs, self.batch_size, self.pad_id = list(pairs), batch_size, pad_id
        self.seed, self.shuffle = seed, shuffle

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    @property
    def items(self) -> list[EncodedPair]:
        """The pairs (what llmlab.training.distributed shards between processes)."""
        return self.pairs

    def collate(self, items: Sequence[EncodedPair]) -> Batch:
        return collate_pairs(list(items), self.pad_id)

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.pairs)))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.pairs), generator=generator).tolist()

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = self.order(epoch)
        for b in range(start, len(self)):
            chunk = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.collate([self.pairs[i] for i in chunk])

    @property
    def longest(self) -> int:
        return max(max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in self.pairs)
