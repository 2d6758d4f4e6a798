"""AdamW with decoupled weight decay, and the warmup + cosine learning-rate schedule.

AdamW (Loshchilov & Hutter, 2019, arXiv:1711.05101): the decay is applied to the weights, not added to the
gradient, θ ← θ − lr·(m̂ / (√v̂ + ε) + λ·θ); torch.optim.AdamW implements it. As in GPT-2/Llama training
and transformers' Trainer, matrices decay and vectors do not: no decay on norm weights and biases (any
parameter with fewer than 2 dimensions, or named like a norm).

Schedule, for optimizer step s (0-based) of S, with W warmup steps and floor r:

    lr(s) = lr · (s + 1) / W                                              s < W
    lr(s) = lr · (r + (1 − r) · ½ (1 + cos(π (s − W) / max(1, S − W))))    otherwise

The schedule is a pure function of the step, so resuming needs only the step number.
Tests: tests/training/test_optim.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

BETAS = (0.9, 0.999)
EPS = 1e-8


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether weight decay applies: matrices yes; biases, norm weights and other vectors no."""
    return param.ndim >= 2 and "norm" not in name.lower()


def param_groups(named: Sequence[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: with and without weight decay (an empty group is left out)."""
    decay = [p for n, p in named if decays(n, p)]
    plain = [p for n, p in named if not decays(n, p)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    named: Sequence[tuple[str, nn.Parameter]], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; the fused kernel where torch has one for the device."""
    groups = param_groups(named, weight_decay)
    device = named[0][1].device.type if named else "cpu"
    fused = device in ("cpu", "cuda") and all(p.dtype in (torch.float32, torch.bfloat16) for _, p in named)
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, fused=fused or None)
    except (RuntimeError, TypeError):  # an older torch without a fused kernel for this device
        return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS)


def lr_at(step: int, total: int, peak: float, warmup: int, floor: float) -> float:
    """The learning rate of optimizer step `step` (see the module docstring)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def warmup_steps(total: int, ratio: float) -> int:
    return round(total * ratio)
