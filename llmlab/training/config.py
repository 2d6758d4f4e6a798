"""The settings every training command shares (pretrain, finetune, and the PEFT and RLHF commands after them).

A command extends `TrainConfig` with its own fields (`class FinetuneConfig(TrainConfig)`); `llmlab.cli.args`
turns the fields into flags, their docstrings into the help, and reads `--config FILE.yaml`. The resolved
config of a run is saved as `config.yaml` in its folder; `--resume RUN` reads it back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmlab.errors import ConfigError

Precision = Literal["auto", "fp32", "bf16"]

# Settings a resumed run may change (how long it runs and how often it reports); anything else would make
# the resumed run a different run.
RESUMABLE_CHANGES = ("max_steps", "epochs", "eval_every", "save_every", "keep_last", "patience", "resume")


@dataclass
class TrainConfig:
    """The training loop's settings."""

    out: str = ""
    """Run folder: checkpoints, metrics.jsonl, loss.png, config.yaml and the final model."""
    max_steps: int = 0
    """Optimizer steps to run (0: --epochs passes over the training data)."""
    epochs: int = 1
    """Passes over the training data when --max-steps is 0."""
    lr: float = 1e-4
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    batch_size: int = 8
    """Sequences per micro-batch (one forward and backward pass)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step: the effective batch is --batch-size × --grad-accum."""
    seq_len: int = 512
    """Longest training sequence in tokens; longer examples are cut."""
    seed: int = 0
    """Seed for initialisation, data order, the validation split and dropout."""
    resume: str = ""
    """Continue the run in this folder from its last checkpoint (after a crash or Ctrl-C)."""
    warmup_ratio: float = 0.05
    """Share of the optimizer steps spent warming the learning rate up linearly from 0."""
    min_lr_ratio: float = 0.1
    """The cosine schedule ends at this fraction of --lr."""
    weight_decay: float = 0.01
    """Decoupled weight decay (AdamW) on weight matrices; never on norms and biases."""
    max_grad_norm: float = 1.0
    """Clip the gradient's global L2 norm to this (0: no clipping)."""
    eval_every: int = 0
    """Optimizer steps between validation runs (0: five times per run, and at the end)."""
    save_every: int = 0
    """Optimizer steps between checkpoints (0: at every validation run, and at the end)."""
    keep_last: int = 2
    """Checkpoints kept besides the best one (by validation loss)."""
    patience: int = 0
    """Early stopping: stop after this many validation runs without a better loss (0: never stop early)."""
    precision: Precision = "auto"
    """fp32, or bf16 autocast (weights and optimizer stay fp32); auto: bf16 where the CPU or GPU has it."""
    device: str = "auto"
    """cpu, cuda, or auto (CUDA when present)."""
    memory_check: bool = True
    """Estimate the peak memory first (a dry run on fake tensors) and refuse a run that cannot fit."""
    fsdp: bool = False
    """With --nproc N: shard the weights, gradients and AdamW state over the N processes (FSDP) instead of
    copying the model into each, for models whose training does not fit one device."""

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "grad_accum", "seq_len", "keep_last")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{_flag(name)} must be a positive integer, got {value!r}")
        for name in ("max_steps", "eval_every", "save_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"--{_flag(name)} must be 0 or a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be above 0, got {self.lr}; try 1e-4 for fine-tuning")
        for name in ("warmup_ratio", "min_lr_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"--{_flag(name)} must be in [0, 1], got {getattr(self, name)}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("--weight-decay and --max-grad-norm must be 0 or more")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    import yaml

    from llmlab.training.checkpoint import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.as_dict(), sort_keys=False, allow_unicode=True))


def resumed_config(cls: type[Any], run: Path, given: dict[str, Any]) -> Any:
    """The config saved in `run`/config.yaml, with the flags given now that a resumed run may change.

    Raises:
        ConfigError: no config.yaml in `run`, or a flag that would change the run (e.g. --lr).
    """
    import yaml

    path = run / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--resume {run}: no config.yaml there, so it is not a training run folder")
    saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in given.items():
        if key in RESUMABLE_CHANGES or key not in saved or saved[key] == value:
            continue
        raise ConfigError(
            f"--{_flag(key)} {value} differs from the run's {saved[key]!r}; a resumed run keeps its settings "
            f"(only {', '.join('--' + _flag(k) for k in RESUMABLE_CHANGES[:-1])} may change); "
            "start a new run with another --out to change it"
        )
    known = {f.name for f in dataclasses.fields(cls)}
    merged = {k: v for k, v in saved.items() if k in known} | {
        k: v for k, v in given.items() if k in RESUMABLE_CHANGES and k in known
    }
    merged["out"], merged["resume"] = str(run), str(run)
    return cls(**merged)
