"""Data-parallel training: one process per device, each on its share of every batch, gradients summed.

    torchrun --standalone --nproc-per-node N -m llmlab finetune full ...      (what --nproc N runs)

Every process builds the same model and data; `init_from_env` joins the process group torchrun describes in
the environment (gloo on CPU, NCCL on GPU, one GPU per local rank). The `Trainer` then:
- shards every batch source (`ShardedBatches`): global micro-batch b is the items `order[b·B·N : (b+1)·B·N]`
  of the epoch's seeded order (B = --batch-size per process), and process r takes every N-th of them from
  the r-th. So N processes see, step for step, the micro-batches one process sees with --batch-size B·N;
  a process left without an item (the epoch's last, short batch) runs a masked copy that adds nothing.
- wraps the model and the objective in one module (`LossModule`) under PyTorch's DistributedDataParallel
  (Li et al., 2020, arXiv:2006.15704): its forward is the objective's summed loss, so DDP's bucketed
  all-reduce runs inside backward whatever the objective calls (a body and a head, or a teacher);
- divides each process's loss by the units of the *global* step (all-reduced) and multiplies by N, since
  DDP averages gradients over processes: the step's gradient is the mean over all its units, as in one
  process.
- or, with --fsdp, shards the model instead (`shard`: FSDP2 `fully_shard` on each transformer block, then on
  the whole; Zhao et al., 2023, arXiv:2304.11277): each process keeps 1/N of every weight, gradient and AdamW
  moment, and gathers one block's full weights only while it runs. Gradients are reduce-scattered and averaged
  like DDP's, so the same scaling makes the step one process's step. A checkpoint gathers the full tensors
  (every process takes part, rank 0 writes), so it is the same folder as without --fsdp: transformers loads
  it, and a resume shards it again (`copy_into`).
- writes (metrics, checkpoints, plots, config.yaml) on rank 0 only; validation is sharded and summed.

Equality with one process at the same global batch: tests/training/test_distributed.py (2 CPU processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError
from llmlab.training.objective import Batch, LossOutput, Objective

IGNORE_KEY = "ignore_batch"
"""A micro-batch carrying this key is a masked stand-in: no units, its loss multiplied by zero."""


def rank() -> int:
    """This process's rank (0 when not distributed; torchrun's RANK before the group is joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def launched() -> bool:
    """True in a process that torchrun started with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def steps_per_epoch(batches: Any, grad_accum: int) -> int:
    """Optimizer steps in one pass over a `Batches` source, counted with the global batch of every process
    torchrun starts (known from the environment before the process group is joined)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    micro = -(-len(batches.items) // (batches.batch_size * world))
    return -(-micro // grad_accum)


def init_from_env() -> int:
    """Join the process group torchrun describes (once); returns the world size (1 when not launched)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_world_size()
    if not launched():
        return 1
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return dist.get_world_size()


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """The sums of `values` over all processes (float64)."""
    import torch.distributed as dist

    if world_size() == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


class ShardedBatches:
    """This process's share of a `Batches` source (see the module docstring)."""

    def __init__(self, source: Any, rank: int, world: int):
        if not all(hasattr(source, a) for a in ("order", "items", "collate", "batch_size")):
            raise ConfigError(
                f"distributed training needs a batch source with a seeded order (llmlab.training.batches."
                f"Batches); {type(source).__name__} cannot be split between processes"
            )
        self.source, self.rank, self.world = source, rank, world
        self.global_batch = source.batch_size * world

    def __len__(self) -> int:
        return -(-len(self.source.items) // self.global_batch)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = self.source.order(epoch)
        items = self.source.items
        for b in range(start, len(self)):
            chunk = order[b * self.global_batch : (b + 1) * self.global_batch]
            mine = chunk[self.rank :: self.world]
            if mine:
                yield self.source.collate([items[i] for i in mine])
            else:  # the same shapes of work as the others, counted as nothing
                batch = self.source.collate([items[chunk[0]]])
                batch[IGNORE_KEY] = torch.ones((), dtype=torch.long)
                yield batch


class LossModule(nn.Module):
    """The model and its objective as one module, so that DDP/FSDP hooks see the whole loss computation."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Batch) -> LossOutput:
        return self.objective.loss(self.model, batch)


def _layers(module: nn.Module) -> list[nn.Module]:
    """The transformer blocks to shard one by one: the children of the outermost ModuleLists (decoder and
    encoder layers; a T5 block's own list of sublayers stays inside its block)."""
    found: list[nn.Module] = []
    for child in module.children():
        found.extend(child if isinstance(child, nn.ModuleList) else _layers(child))
    return found


def wrap(model: nn.Module, objective: Objective) -> nn.Module:
    """`LossModule(model, objective)` under DDP."""
    from torch.nn.parallel import DistributedDataParallel

    module = LossModule(model, objective)
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def shard(
    model: nn.Module, objective: Objective, trainable: Mapping[str, nn.Parameter]
) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """`LossModule(model, objective)` sharded with FSDP2, and `trainable` with the same names mapped to the
    sharded parameters (fully_shard replaces every parameter by a DTensor one, so the old objects are dead)."""
    from torch.distributed.fsdp import fully_shard

    module = LossModule(model, objective)
    where = {id(p): name for name, p in module.named_parameters()}
    names = {name: where[id(p)] for name, p in trainable.items()}
    for layer in _layers(model):
        fully_shard(layer)
    fully_shard(module)
    after = dict(module.named_parameters())
    return module, {name: after[fqn] for name, fqn in names.items()}


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole of a sharded (DTensor) tensor, gathered from every process (all must call); others as is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every sharded tensor gathered, on the CPU (every process must call)."""
    return {k: full_tensor(v.detach()).cpu() for k, v in model.state_dict().items()}


def shard_like(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value` (a whole tensor, the same in every process) split as `like` is, when `like` is sharded and has
    its shape; otherwise `value` unchanged."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(like, DTensor) or tuple(value.shape) != tuple(like.shape):
        return value
    whole = value.to(device=like.device, dtype=like.dtype)
    return distribute_tensor(whole, like.device_mesh, like.placements, src_data_rank=None)


@torch.no_grad()
def copy_into(target: torch.Tensor, value: torch.Tensor) -> None:
    """target ← value, where `target` may be this process's shard of a sharded parameter."""
    from torch.distributed.tensor import DTensor

    if isinstance(target, DTensor):
        target.to_local().copy_(shard_like(value, target).to_local())  # type: ignore[attr-defined]
    else:
        target.copy_(value)


def strip_nproc(argv: Sequence[str]) -> tuple[list[str], int]:
    """(argv without --nproc N / --nproc=N, N; 1 when absent)."""
    out, n, skip = [], 1, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--nproc" and i + 1 < len(argv):
            n, skip = int(argv[i + 1]), True
        elif arg.startswith("--nproc="):
            n = int(arg.split("=", 1)[1])
        else:
            out.append(arg)
    return out, n


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run `llmlab ARGV` in `nproc` processes on this machine with torchrun; returns its exit status."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be a positive integer, got {nproc}")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "llmlab", *argv,
    ]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(command, env=env)
