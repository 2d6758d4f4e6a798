"""Training: one loop (llmlab.training.loop.Trainer) for pretraining, fine-tuning, PEFT, RLHF and distillation.

A method plugs in an `Objective` (the loss, summed over its units) and the named parameters that train; the
loop owns the optimizer, schedule, accumulation, clipping, precision, validation, checkpoints and resume.
"""

from llmlab.training.batches import Batches, BatchSource, RowBatches, collate
from llmlab.training.causal_lm import CausalLMObjective
from llmlab.training.checkpoint import FullModelSaver, ModelSaver, SubsetSaver
from llmlab.training.config import TrainConfig
from llmlab.training.loop import Event, Trainer, TrainResult
from llmlab.training.objective import Batch, LossOutput, Objective

__all__ = [
    "Batch",
    "BatchSource",
    "Batches",
    "CausalLMObjective",
    "Event",
    "FullModelSaver",
    "LossOutput",
    "ModelSaver",
    "Objective",
    "RowBatches",
    "SubsetSaver",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "collate",
]
