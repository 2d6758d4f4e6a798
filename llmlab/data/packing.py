"""Rows of tokens for training: documents packed without attention across them, examples one per row or packed.

Each row carries, per position t: the input token, its next-token target (IGNORE = -100 where nothing is
learned) and its position id. Position ids restart at 0 at every document boundary, and the model is called
with these position ids and no attention mask: transformers (`masking_utils.find_packed_sequence_indices`)
then builds a block-diagonal causal mask, so a token attends only to earlier tokens of its own document and
RoPE positions are those of the document alone (flash-attention kernels use the same position ids as varlen
boundaries). Targets never cross a boundary: the last token of a document predicts nothing.

    pack_documents   pretraining: documents (each ending in EOS) concatenated into rows of exactly
                     `seq_len` tokens; a document longer than the room left continues in the next row (its
                     positions restart there; the token before the cut still predicts the one after it).
    pack_examples    fine-tuning: whole examples placed into rows of at most `seq_len` tokens, first-fit
                     decreasing; an example never straddles two rows.
    single_rows      fine-tuning without packing: one example per row (right-padded when batched).

Right padding needs no attention mask with a causal model: real tokens never attend to the pads after them,
and the pads' targets are IGNORE. Invariant test: tests/data/test_packing.py::test_packed_logits_equal_alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from llmlab.data.tokenize import Tokenized
from llmlab.errors import ConfigError

IGNORE = -100
T = TypeVar("T")


@dataclass
class Row:
    """One training sequence: inputs, next-token targets (IGNORE = no loss) and per-document positions."""

    input_ids: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        return sum(t != IGNORE for t in self.targets)

    def append(self, example: Tokenized) -> None:
        """Add a whole document: positions from 0, targets inside it only."""
        ids, mask = example.input_ids, example.loss_mask
        self.input_ids += ids
        self.targets += [ids[t + 1] if mask[t + 1] else IGNORE for t in range(len(ids) - 1)] + [IGNORE]
        self.position_ids += list(range(len(ids)))


def single_rows(examples: Sequence[Tokenized]) -> list[Row]:
    """One row per example."""
    rows = []
    for ex in examples:
        row = Row()
        row.append(ex)
        rows.append(row)
    return rows


def pack_documents(documents: Sequence[Tokenized], seq_len: int) -> list[Row]:
    """Concatenate documents and cut rows of `seq_len` tokens (the last row may be shorter)."""
    _check_len(seq_len)
    stream = Row()
    starts = []  # index in the stream where each document starts
    for doc in documents:
        starts.append(len(stream))
        stream.append(doc)
    rows = []
    for begin in range(0, len(stream), seq_len):
        end = min(begin + seq_len, len(stream))
        positions = stream.position_ids[begin:end]
        offset = positions[0]
        if offset:  # a document cut by the row boundary restarts at position 0 in this row
            boundary = _next_start(starts, begin) - begin
            positions = [p - offset for p in positions[:boundary]] + positions[boundary:]
        rows.append(Row(stream.input_ids[begin:end], stream.targets[begin:end], positions))
    return rows


def _next_start(starts: list[int], index: int) -> int:
    """The first document start after `index` (or infinity)."""
    import bisect

    k = bisect.bisect_right(starts, index)
    return starts[k] if k < len(starts) else 1 << 62


def pack_examples(examples: Sequence[Tokenized], seq_len: int) -> list[Row]:
    """First-fit decreasing bin packing of whole examples into rows of at most `seq_len` tokens."""
    _check_len(seq_len)
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    rows: list[Row] = []
    for i in order:
        ex = examples[i]
        if len(ex) > seq_len:
            raise ConfigError(f"{ex.source}: example of {len(ex)} tokens is longer than --seq-len {seq_len}")
        row = next((r for r in rows if len(r) + len(ex) <= seq_len), None)
        if row is None:
            row = Row()
            rows.append(row)
        row.append(ex)
    return rows


def split_by_seed(items: Sequence[T], val_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, validation): a seeded shuffle, then `val_fraction` of the items (at least one) held out.

    With fewer than two items, or `val_fraction` 0, everything is training data.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = 0 if val_fraction == 0 or len(items) < 2 else max(1, round(len(items) * val_fraction))
    val = sorted(order[:n_val])
    held = set(val)
    return [x for i, x in enumerate(items) if i not in held], [items[i] for i in val]


def _check_len(seq_len: int) -> None:
    if seq_len < 2:
        raise ConfigError(f"--seq-len must be at least 2 tokens, got {seq_len}")
