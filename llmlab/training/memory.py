"""Will the run fit? The run's peak memory, estimated and checked before it starts.

The estimate is a dry run of two AdamW steps of llmlab's own training step on fake tensors at the run's
micro-batch and sequence length, fp32 (`training_dry_run`): the MLPs as the trainer runs them (`lean_mlps`)
and the loss as it computes it (the output projection a chunk of rows at a time when the logits would be
large, `causal_lm.head_losses`); weights + gradients + optimizer + activations. `llmlab models info` shows
transformers' plain step instead (whole logits, its MLP), which needs more. Available memory is the OS's
MemAvailable on the CPU (what can be allocated without swapping), or the free memory of the CUDA device.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from llmlab.errors import ConfigError
from llmlab.models.dry_run import DryRun
from llmlab.models.sizing import MemoryEstimate


def training_dry_run(
    hf_config: Any, batch_size: int, seq_len: int, setup: Callable[[Any], list[Any]]
) -> DryRun:
    """Live bytes of two training steps on fake tensors (llmlab.models.dry_run): `setup` prepares the model
    (a PEFT method injected, say) and returns the trained tensors; the MLPs run as the trainer runs them, the
    language-model loss over `batch_size` rows of `seq_len` tokens as `CausalLMObjective` computes it (every
    position a target: fake tensors cannot take a boolean mask), backward, AdamW on the trained tensors, fp32."""
    import torch

    from llmlab.models import dry_run
    from llmlab.models.loading import transformer_kind
    from llmlab.training.causal_lm import head_losses, hidden_states, split_head
    from llmlab.training.lean import lean_mlps

    def loss(model: Any, batch: dict[str, Any]) -> Any:
        parts = split_head(model)
        if parts is None:  # encoders, encoder-decoders, scaled logits: the model's own loss
            return dry_run._loss(model, transformer_kind(model.config), batch["input_ids"], None)
        hidden = hidden_states(parts[0], batch, model)[:, -seq_len:].flatten(0, 1)  # (B T, H)
        return head_losses(parts[1], hidden, batch["input_ids"].flatten())[0]

    def step(model: Any) -> int:
        model.train()
        params = setup(model)
        lean_mlps(model)
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        ids = torch.zeros(batch_size, seq_len, dtype=torch.long)
        batch = {"input_ids": ids, "position_ids": torch.arange(seq_len).repeat(batch_size, 1)}
        for _ in range(2):
            loss(model, batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        del optimizer
        return sum(p.numel() for p in params)

    return dry_run._measure(hf_config, torch.float32, step)


def estimate_training(
    hf_config: Any, batch_size: int, seq_len: int, setup: Callable[[Any], list[Any]], scenario: str, what: str
) -> MemoryEstimate:
    """The run's peak memory by part from `training_dry_run`: fp32 weights, gradients and AdamW's two states
    of the trained tensors, and the rest of the peak as activations; `what` says which weights train."""
    from llmlab.models.sizing import model_shape

    run = training_dry_run(hf_config, batch_size, seq_len, setup)
    weights, grads, optim = model_shape(hf_config).parameters * 4, run.trainable * 4, run.trainable * 8
    rest = max(0, run.peak_bytes - weights - grads - optim)
    detail = f"fp32, AdamW, {what}: {run.trainable:,} trainable parameters"
    return MemoryEstimate(scenario, weights, 0, grads, optim, rest, run.trainable, detail)


def estimate_full_training(config: Any, batch_size: int, seq_len: int, shards: int = 1) -> MemoryEstimate:
    """Peak memory of full training at this micro-batch size and length (fp32 weights, AdamW), for one
    process; with `shards` > 1 (--fsdp over that many processes) each keeps that share of the weights,
    gradients and optimizer state, plus one transformer block gathered whole while it runs."""
    from llmlab.models.sizing import model_shape

    every = estimate_training(
        config, batch_size, seq_len, lambda model: list(model.parameters()), "full fine-tune", "all weights"
    )
    if shards == 1:
        return every
    # one block gathered whole: a rough upper bound, as the embeddings count in the average
    block = every.weights // max(1, model_shape(config).layers)
    return dataclasses.replace(
        every,
        weights=-(-every.weights // shards) + block,
        gradients=-(-every.gradients // shards),
        optimizer=-(-every.optimizer // shards),
        detail=every.detail + f", sharded over {shards} processes (FSDP)",
    )


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
