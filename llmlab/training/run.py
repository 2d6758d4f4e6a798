"""What every training recipe does around the loop: seeds, the memory check, the dry-run preview, the run folder.

A recipe (pretrain, finetune full, and the PEFT and RLHF ones) is: resolve the config, build data and model,
`preview` (the --dry-run report), `check_memory`, `save_config`, then `Trainer(...).fit(resume)`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmlab.data.tokenize import Tokenized
from llmlab.errors import ConfigError
from llmlab.models.sizing import MemoryEstimate
from llmlab.training.config import TrainConfig, save_config
from llmlab.training.memory import available_bytes, check_fits, estimate_full_training


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Preview:
    """What a run will train on, before it starts (printed by --dry-run and at the start of a run)."""

    examples: list[Tokenized]
    """The first two examples, tokenized (loss_mask marks the learned tokens)."""
    stats: dict[str, Any]
    """Counts: records, examples, tokens, loss tokens, truncated, dropped, rows, steps."""
    problems: list[str] = field(default_factory=list)
    """Bad records, `file:line: what is wrong` (left out of the data)."""
    memory: MemoryEstimate | None = None
    available: int | None = None
    seq_len: int = 0
    """The longest row: the sequence length the memory estimate assumes."""
    tokenizer: Any = None
    """Decodes `examples` for display."""
    shown: list[str] = field(default_factory=list)
    """Lines that show the first examples when they are not masked token rows (classification, seq2seq)."""


def check_memory(
    hf_config: Any, config: TrainConfig, device: str, seq_len: int | None = None
) -> tuple[MemoryEstimate | None, int | None]:
    """The estimate at `seq_len` (default --seq-len; recipes pass their longest row) and the available
    memory; raises ConfigError when the run cannot fit."""
    if not config.memory_check:
        return None, available_bytes(device)
    shards = int(os.environ.get("WORLD_SIZE", "1")) if config.fsdp else 1  # torchrun's, before the group
    estimate = estimate_full_training(hf_config, config.batch_size, seq_len or config.seq_len, shards)
    available = available_bytes(device)
    check_fits(estimate, available)
    return estimate, available


def require_out(config: TrainConfig, dry_run: bool) -> None:
    """A run (not a dry run) needs its folder; refused before anything loads."""
    if not dry_run and not config.out:
        raise ConfigError("--out is required: the folder where the run writes its checkpoints and metrics")


def prepare_out(config: TrainConfig, resume: bool) -> Path:
    """The run folder, with the resolved config saved (kept as it was on resume); under a distributed
    launch only rank 0 writes."""
    from llmlab.training.distributed import rank

    out = Path(config.out)
    if rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_config(config, out / "config.yaml")
    return out
