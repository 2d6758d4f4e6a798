"""Will the run fit? The memory estimate of `llmlab models info` for this run, checked before it starts.

The estimate is the "full fine-tune" row of `llmlab.models.sizing` (a dry run of two AdamW steps on fake
tensors at the run's micro-batch and sequence length, fp32): weights + gradients + optimizer + activations.
Available memory is the OS's MemAvailable on the CPU (what can be allocated without swapping), or the free
memory of the CUDA device.
"""

from __future__ import annotations

import os
from typing import Any

from llmlab.errors import ConfigError
from llmlab.models.sizing import MemoryEstimate


def estimate_full_training(config: Any, batch_size: int, seq_len: int, shards: int = 1) -> MemoryEstimate:
    """Peak memory of full training at this micro-batch size and length (fp32 weights, AdamW), for one
    process; with `shards` > 1 (--fsdp over that many processes) each keeps that share of the weights,
    gradients and optimizer state, plus one transformer block gathered whole while it runs."""
    from llmlab.models import dry_run
    from llmlab.models.sizing import model_shape

    shape = model_shape(config)
    run = dry_run.training_peak(config, "full", batch_size, seq_len)
    weights, grads, optim = shape.parameters * 4, run.trainable * 4, run.trainable * 8
    rest = max(0, run.peak_bytes - weights - grads - optim)
    detail = f"fp32, AdamW, all weights: {run.trainable:,} trainable parameters"
    if shards > 1:
        block = weights // max(1, shape.layers)  # a rough upper bound: embeddings count in the average
        weights, grads, optim = -(-weights // shards) + block, -(-grads // shards), -(-optim // shards)
        detail += f", sharded over {shards} processes (FSDP)"
    return MemoryEstimate("full fine-tune", weights, 0, grads, optim, rest, run.trainable, detail)


def available_bytes(device: str = "cpu") -> int | None:
    """Memory that can still be allocated on `device` (None when unknown)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def check_fits(estimate: MemoryEstimate, available: int | None) -> None:
    """Raise when the estimate is above the available memory, with both numbers and what to change."""
    if available is None or estimate.total <= available:
        return
    raise ConfigError(
        f"this run needs about {gb(estimate.total)} (weights {gb(estimate.weights)}, gradients "
        f"{gb(estimate.gradients)}, optimizer {gb(estimate.optimizer)}, activations {gb(estimate.activations)}) "
        f"but only {gb(available)} is available; lower --batch-size (raise --grad-accum to keep the effective "
        "batch) or --seq-len, or train fewer parameters (LoRA)"
    )
