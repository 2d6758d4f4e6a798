"""Micro-batches for the loop: a `BatchSource` gives an epoch's micro-batches in a seeded order, from any point.

The order of epoch e is a permutation drawn from `torch.Generator().manual_seed(seed + e)`: it depends on
nothing but the seed and the epoch, so a resumed run skips to the saved position (`start`, in micro-batches)
and sees exactly the batches the interrupted run would have seen. A method whose data is made during training
(PPO's rollouts) implements the same protocol with its own seeded generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

import torch

from llmlab.data.packing import IGNORE, Row
from llmlab.training.objective import Batch

T = TypeVar("T")


class BatchSource(Protocol):
    """An epoch of micro-batches, deterministic for a given epoch."""

    def __len__(self) -> int:
        """Micro-batches per epoch."""
        ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The micro-batches of `epoch`, from micro-batch index `start` on."""
        ...


def collate(rows: Sequence[Row], pad_id: int) -> Batch:
    """Right-pad rows to the longest: input_ids, targets, position_ids (B, T) and the real token count."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.arange(width, dtype=torch.long).repeat(len(rows), 1)
    for i, row in enumerate(rows):
        n = len(row)
        ids[i, :n] = torch.tensor(row.input_ids)
        targets[i, :n] = torch.tensor(row.targets)
        positions[i, :n] = torch.tensor(row.position_ids)
        if n < width:  # pads continue the last document's positions: they come after it, so nothing sees them
            positions[i, n:] = torch.arange(width - n) + row.position_ids[-1] + 1
    tokens = torch.tensor(sum(len(r) for r in rows))
    return {"input_ids": ids, "targets": targets, "position_ids": positions, "tokens": tokens}


class Batches(Generic[T]):
    """Items grouped `batch_size` at a time by `collate`, shuffled per epoch (in order when `shuffle` is False).

    Any per-item data works (packed rows, labelled texts, source/target pairs); the order depends only on the
    seed and the epoch, and `ShardedBatches` (llmlab.training.distributed) splits each batch between
    processes from the same order."""

    def __init__(
        self,
        items: Sequence[T],
        batch_size: int,
        collate: Callable[[Sequence[T]], Batch],
        seed: int = 0,
        shuffle: bool = True,
    ):
        if not items:
            raise ValueError("no rows to batch")
        self.items, self.batch_size, self.collate = list(items), batch_size, collate
        self.seed, self.shuffle = seed, shuffle

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.items)))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.items), generator=generator).tolist()

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = self.order(epoch)
        for b in range(start, len(self)):
            chunk = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.collate([self.items[i] for i in chunk])


class RowBatches(Batches[Row]):
    """Token rows (llmlab.data.packing) batched by `collate`: right-padded with `pad_id`."""

    def __init__(
        self, rows: Sequence[Row], batch_size: int, pad_id: int, seed: int = 0, shuffle: bool = True
    ):
        super().__init__(rows, batch_size, lambda chunk: collate(chunk, pad_id), seed, shuffle)
        self.pad_id = pad_id

    @property
    def rows(self) -> list[Row]:
        return self.items

    @property
    def tokens(self) -> int:
        return sum(len(r) for r in self.rows)

    @property
    def loss_tokens(self) -> int:
        return sum(r.loss_tokens for r in self.rows)
