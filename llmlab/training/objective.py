"""What a training method plugs into the loop: an objective (the loss) and its trainable parameters.

Full fine-tuning, pretraining, LoRA, adapters, prompt tuning, reward models, DPO, PPO and distillation differ
only here. The loop (`llmlab.training.loop.Trainer`) owns everything else: the optimizer and schedule,
accumulation, clipping, precision, evaluation, checkpoints, resume, metrics and plots.

An `Objective` returns the loss *summed* over the units it averages (target tokens for language modelling,
pairs for DPO, examples for classification) and says up front how many units a micro-batch holds. The loop
divides every micro-batch's sum by the units of the whole optimizer step before `backward`, so a step's
gradient is that of the mean over all its units whatever the split into micro-batches: gradient accumulation
4 × 2 equals one batch of 8 (tests/training/test_loop.py::test_accumulation_equals_large_batch).

    loss_step = Σ_micro-batches loss_sum(mb) / Σ_micro-batches units(mb)

`metrics` are sums over the same units too (e.g. correct predictions, chosen-minus-rejected margins); the loop
reports metric / units for training steps and validation alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

Batch = dict[str, "torch.Tensor"]


@dataclass
class LossOutput:
    """A micro-batch's loss summed over its units, plus summed metrics to report."""

    loss: torch.Tensor
    """Scalar; the sum over the micro-batch's units (not the mean)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Sums over the units (the loop divides by the units to report them)."""


@runtime_checkable
class Objective(Protocol):
    """A training loss. `perplexity` objectives report exp(mean loss) at validation."""

    perplexity: bool

    def units(self, batch: Batch) -> int:
        """How many units (target tokens, pairs, examples) the micro-batch's loss sums over."""
        ...

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The summed loss of one micro-batch (called under autocast; no backward here)."""
        ...

    def tokens(self, batch: Batch) -> int:
        """Input tokens processed for the micro-batch (for tokens/s)."""
        ...
