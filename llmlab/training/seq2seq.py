"""Sequence-to-sequence training of encoder-decoder models (T5, BART): translation, summarisation, rewriting.

    memory = encoder(source)                                     (B, S, H)
    logits_t = decoder(start, y_1 .. y_{t-1}; memory)            teacher forcing, (B, T, V)
    loss_sum = Σ_{t : y_t ≠ -100} −log softmax(logits_t)[y_t]     summed over the target tokens (the units)

The decoder input is the target shifted right behind the model's `decoder_start_token_id` (T5: the pad
token), as transformers' `_shift_right` builds it from `labels`; padded target positions are -100. The source
is encoded exactly as the decoding engine encodes a prompt (`llmlab.data.tokenize.encode_prompt`), so
`llmlab generate --model RUN SOURCE` feeds the model what it was trained on; the target ends with EOS, so the
model learns to stop. Records: {"source", "target"}, or instruction records, whose source is the plain
"instruction / Input: ... / Output:" prompt of `llmlab generate --instruction I INPUT` (llmlab.prompting).

New models come from a preset (t5-tiny, t5-small) or a YAML file of T5Config fields
(`llmlab.models.presets.seq2seq_config`), with a byte-level BPE tokenizer trained on the data or a named
model's tokenizer. Parity: tests/training/test_seq2seq.py::test_loss_matches_transformers (the summed loss
equals T5's own `labels` loss times the number of targets); learning: test_tiny_t5_learns_to_reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from llmlab.data.packing import IGNORE
from llmlab.data.records import Record
from llmlab.data.tokenize import encode_piece, encode_prompt
from llmlab.errors import DataError
from llmlab.prompting.fewshot import FewShotPrompt
from llmlab.training.objective import Batch, LossOutput

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Pair:
    """One source -> target example, as token ids."""

    source_ids: list[int]
    target_ids: list[int]
    source: str
    """`file:line`."""
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.source_ids) + len(self.target_ids)


def source_text(record: Record) -> tuple[str, str]:
    """(the encoder's input text, the target text) of a seq2seq or instruction record."""
    f = record.fields
    if record.format == "seq2seq":
        return f["source"], f["target"]
    if record.format == "instruction":
        if f.get("input", "").strip():
            prompt = FewShotPrompt(query=f["input"], instruction=f["instruction"])
        else:
            prompt = FewShotPrompt(query=f["instruction"])
        return prompt.plain_text(), f["output"]  # what render(prompt, tokenizer, chat=False) gives
    raise DataError(
        f'--task seq2seq reads {{"source", "target"}} or instruction records, not {record.format} records',
        record.source,
    )


def encode_pair(tokenizer: Any, record: Record, seq_len: int) -> Pair:
    """Source ids (as the engine encodes a prompt) and target ids ending in EOS, each cut to `seq_len`."""
    source, target = source_text(record)
    src = encode_prompt(tokenizer, source)
    tgt = encode_piece(tokenizer, target)
    eos = tokenizer.eos_token_id
    if eos is not None and (not tgt or tgt[-1] != eos):
        tgt.append(eos)
    truncated = len(src) > seq_len or len(tgt) > seq_len
    return Pair(src[:seq_len], tgt[:seq_len], record.source, truncated)


def collate_pairs(items: Sequence[Pair], pad_id: int, start_id: int) -> Batch:
    """input_ids, attention_mask (B, S); decoder_input_ids, labels (B, T); the real token count."""
    s_width = max(len(p.source_ids) for p in items)
    t_width = max(len(p.target_ids) for p in items)
    ids = torch.full((len(items), s_width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), s_width), dtype=torch.long)
    labels = torch.full((len(items), t_width), IGNORE, dtype=torch.long)
    for i, p in enumerate(items):
        n, m = len(p.source_ids), len(p.target_ids)
        ids[i, :n], mask[i, :n] = torch.tensor(p.source_ids), 1
        labels[i, :m] = torch.tensor(p.target_ids)
    # transformers' _shift_right: the start token, then the labels without the last column, -100 -> pad
    decoder = torch.cat([torch.full((len(items), 1), start_id, dtype=torch.long), labels[:, :-1]], dim=1)
    decoder[decoder == IGNORE] = pad_id
    tokens = torch.tensor(sum(len(p) for p in items))
    return {
        "input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder, "labels": labels,
        "tokens": tokens,
    }  # fmt: skip


def empty_pair_batch(pad_id: int, start_id: int) -> Batch:
    """A batch that contributes nothing (one pad token, its target ignored): a process with no example."""
    batch = collate_pairs([Pair([pad_id], [pad_id], "")], pad_id, start_id)
    batch["labels"][:] = IGNORE
    return batch


class Seq2SeqObjective:
    """Teacher-forced cross-entropy on the target tokens; reports perplexity and next-token accuracy."""

    perplexity = True

    def units(self, batch: Batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"])

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        import torch.nn.functional as F

        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
            use_cache=False,
        )
        labels = batch["labels"]  # (B, T)
        keep = labels != IGNORE
        logits = out.logits[keep]  # (N, V)
        y = labels[keep]  # (N,)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        return LossOutput(loss, {"accuracy": float((logits.detach().argmax(-1) == y).sum())})
