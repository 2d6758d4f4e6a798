"""The one training loop: pretraining, fine-tuning, PEFT, reward models, DPO, PPO and distillation all run here.

    for each optimizer step s:
        micro-batches b_1..b_k (k = grad_accum), N = Σ units(b_i)
        for each b_i:  loss_i = objective.loss(model, b_i) under autocast;  backward(loss_i / N)
        skip the step if a loss or the gradient norm is NaN/inf (reported, weights untouched)
        clip the global gradient norm; lr = warmup + cosine(s); AdamW step; zero the gradients
        every eval_every steps: validation loss (and perplexity); best and early stopping
        every save_every steps (and at each new best and at the end): an atomic checkpoint

A method plugs in an `Objective` (llmlab.training.objective) and the named parameters that train; every
other parameter of the model is frozen (requires_grad False: no gradient buffers, no optimizer state). A
`ModelSaver` (llmlab.training.checkpoint) writes the model part of each checkpoint: the whole HF model, or
only the trainable subset. `fit(resume=True)` restores weights, optimizer, RNGs and the data position from the
newest checkpoint; the resumed run then computes exactly what the uninterrupted run computes
(tests/training/test_resume.py kills a run with SIGKILL and compares the final weights bit for bit).

Under torchrun (or --nproc N) the Trainer joins the process group, shards the batches, wraps the model and
the objective in DDP (or shards them with FSDP2 under --fsdp) and sums the units, losses and metrics over the
processes; only rank 0 writes (metrics, plots, checkpoints). See llmlab.training.distributed.
Gated-SiLU MLPs (Llama-style models) run through `llmlab.training.lean.SwiGLU`: the same values and gradients,
bit for bit, with one (tokens, intermediate) activation fewer kept per block.
Tests: tests/training/test_loop.py, tests/training/test_distributed.py.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError
from llmlab.training import checkpoint as ckpt
from llmlab.training import distributed
from llmlab.training.batches import BatchSource
from llmlab.training.config import TrainConfig
from llmlab.training.lean import lean_mlps
from llmlab.training.metrics import MetricsLog, plot_losses
from llmlab.training.objective import Batch, LossOutput, Objective
from llmlab.training.optim import build_optimizer, lr_at, warmup_steps

PLOT_EVERY_S = 30.0  # loss.png is redrawn at a checkpoint at most this often (and always at the end)


@dataclass
class Event:
    """Progress reported to the caller (the CLI draws its progress bar from these)."""

    kind: str
    """start, step, eval, skip, checkpoint or end."""
    step: int
    total_steps: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    steps: int
    stopped: str
    """max_steps, epochs, early_stopping."""
    best_step: int | None
    best_val_loss: float | None
    first_eval: dict[str, float] | None
    """Validation before the first step (when `eval_at_start`)."""
    last_eval: dict[str, float] | None
    skipped_steps: int
    final: Path | None
    """The checkpoint exported to the top of the run folder."""


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: None for fp32; bf16 when asked, or with `auto` where the hardware has it."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


class Trainer:
    """Runs `objective` on `train_data`, updating `trainable`, with the settings of `config`."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        train_data: BatchSource,
        config: TrainConfig,
        *,
        trainable: Mapping[str, nn.Parameter] | None = None,
        val_data: BatchSource | None = None,
        saver: ckpt.ModelSaver | None = None,
        on_event: Callable[[Event], None] | None = None,
        eval_at_start: bool = False,
    ):
        if not config.out:
            raise ConfigError(
                "--out is required: the folder where the run writes its checkpoints and metrics"
            )
        self.model, self.objective, self.config = model, objective, config
        self.world = distributed.init_from_env()
        self.rank = distributed.rank()
        if self.world > 1:
            train_data = distributed.ShardedBatches(train_data, self.rank, self.world)
            if val_data is not None:
                val_data = distributed.ShardedBatches(val_data, self.rank, self.world)
        self.train_data, self.val_data = train_data, val_data
        self.trainable = dict(trainable) if trainable is not None else self._all_trainable(model)
        self._freeze_others()
        lean_mlps(model)  # gated MLPs keep one activation fewer for the backward (same values and gradients)
        self.saver = saver or ckpt.FullModelSaver(model)
        self.on_event = on_event or (lambda e: None)
        self.eval_at_start = eval_at_start
        self.run = Path(config.out)
        self.device = next(iter(self.trainable.values())).device
        self.sharded = self._check_fsdp(config.fsdp)
        self.wrapped: nn.Module | None = None
        if self.sharded:
            self.wrapped, self.trainable = distributed.shard(model, objective, self.trainable)
        elif self.world > 1:
            self.wrapped = distributed.wrap(model, objective)
        self.autocast = resolve_precision(config.precision, self.device)
        named = list(self.trainable.items())
        self.optimizer = build_optimizer(named, config.lr, config.weight_decay)
        self.names = {id(p): n for n, p in named}
        self.steps_per_epoch = -(-len(train_data) // config.grad_accum)
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.warmup = warmup_steps(self.total_steps, config.warmup_ratio)
        self.eval_every = config.eval_every or max(1, self.total_steps // 5)
        self.metrics = MetricsLog(self.run / "metrics.jsonl", enabled=self.rank == 0)
        # Counters saved in every checkpoint.
        self.step, self.epoch, self.position = 0, 0, 0
        self.best_step: int | None = None
        self.best_loss: float | None = None
        self.bad_evals = self.skipped = self.tokens_seen = 0
        self.first_eval: dict[str, float] | None = None
        self.last_eval: dict[str, float] | None = None
        self._plotted = -math.inf

    def _check_fsdp(self, fsdp: bool) -> bool:
        """--fsdp needs several processes and a method that saves the whole model."""
        if not fsdp:
            return False
        if self.world < 2:
            raise ConfigError(
                "--fsdp shards the model over several processes, and this run has one: add --nproc 2 (or "
                "more), or run under torchrun, or leave --fsdp out"
            )
        if not isinstance(self.saver, ckpt.FullModelSaver):
            raise ConfigError(
                "--fsdp shards the training of every weight (finetune full, pretrain, distill); this method "
                "trains a small part of the model: leave --fsdp out (--nproc N alone runs it in N processes)"
            )
        return True

    @staticmethod
    def _all_trainable(model: nn.Module) -> dict[str, nn.Parameter]:
        named = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not named:
            raise ConfigError("the model has no trainable parameter; pass `trainable=` or unfreeze some")
        return named

    def _freeze_others(self) -> None:
        keep = {id(p) for p in self.trainable.values()}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in keep)
        for p in self.trainable.values():
            p.requires_grad_(True)

    # ---- the run ---------------------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to the end (or early stop); `resume` continues from the newest checkpoint in the run folder."""
        if self.rank == 0:
            self.run.mkdir(parents=True, exist_ok=True)
            ckpt.remove_partial(self.run)
        if resume:
            self._resume()
        elif self.rank == 0:
            self.metrics.path.unlink(missing_ok=True)
        self.on_event(Event("start", self.step, self.total_steps, {"resumed": resume}))
        if self.eval_at_start and self.step == 0 and self.val_data is not None:
            self.first_eval = self.evaluate()
            self.metrics.write({"step": 0, **self.first_eval})
            self.on_event(Event("eval", 0, self.total_steps, self.first_eval))
        stopped = self._loop()
        final = self._finish()
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()  # the others wait until rank 0 has written the final model
        self.on_event(Event("end", self.step, self.total_steps, {"stopped": stopped}))
        return TrainResult(
            self.step, stopped, self.best_step, self.best_loss, self.first_eval, self.last_eval, self.skipped,
            final,
        )  # fmt: skip

    def _micro_batches(self) -> Iterator[tuple[int, list[Batch]]]:
        """(epoch, the micro-batches of one optimizer step), from the saved data position on."""
        k = self.config.grad_accum
        while True:  # `_loop` moves self.epoch / self.position on as it consumes the groups
            epoch, group = self.epoch, []
            for batch in self.train_data.batches(epoch, self.position):
                group.append(batch)
                if len(group) == k:
                    yield epoch, group
                    group = []
            if group:  # the epoch's last step has fewer micro-batches
                yield epoch, group

    def _loop(self) -> str:
        if self.step >= self.total_steps:
            return "max_steps" if self.config.max_steps else "epochs"
        started = time.perf_counter()
        for epoch, group in self._micro_batches():
            rng_before = ckpt.rng_state()
            try:
                self._step(group, epoch, started)
            except KeyboardInterrupt:
                self._save_interrupted(rng_before)
                raise
            self.position += len(group)
            if self.position >= len(self.train_data):
                self.epoch, self.position = self.epoch + 1, 0
            stop = self._after_step()
            if stop or self.step >= self.total_steps:
                return stop or ("max_steps" if self.config.max_steps else "epochs")
        raise AssertionError("unreachable: the batch iterator never ends")

    def _autocast(self) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _to_device(self, batch: Batch) -> Batch:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _units(self, batch: Batch) -> int:
        return 0 if distributed.IGNORE_KEY in batch else self.objective.units(batch)

    def _loss(self, batch: Batch) -> LossOutput:
        """The objective's summed loss, through the DDP wrapper when distributed."""
        with self._autocast():
            out = self.wrapped(batch) if self.wrapped is not None else self.objective.loss(self.model, batch)
        if distributed.IGNORE_KEY in batch:  # a stand-in batch: its gradient is zero, its metrics too
            return LossOutput(out.loss * 0.0, {k: 0.0 for k in out.metrics})
        return out

    def _sync(self, last: bool) -> Any:
        """DDP all-reduces gradients in the last micro-batch's backward only."""
        no_sync = getattr(self.wrapped, "no_sync", None)  # DDP has it; FSDP and one process do not
        if last or no_sync is None:
            return contextlib.nullcontext()
        return no_sync()

    def _global(self, *values: float) -> list[float]:
        return distributed.all_reduce_sum(values, self.device) if self.world > 1 else list(values)

    def _step(self, group: list[Batch], epoch: int, started: float) -> None:
        t0 = time.perf_counter()
        batches = [self._to_device(b) for b in group]
        units_local = sum(self._units(b) for b in batches)
        tokens_local = sum(self.objective.tokens(b) for b in batches)
        units, tokens = (int(v) for v in self._global(units_local, tokens_local))
        # DDP averages gradients over the processes; * world makes the step's gradient Σ loss / Σ units.
        scale = self.world / max(units, 1)
        self.model.train()
        total, problem = 0.0, None
        sums: dict[str, float] = {}
        for i, batch in enumerate(batches):
            with self._sync(i == len(batches) - 1):
                out = self._loss(batch)
                value = float(out.loss.detach())
                if not math.isfinite(value):
                    problem = f"loss was {value} in micro-batch {i + 1} of {len(batches)}"
                    if self.world == 1:
                        break  # (distributed: every process still runs its backward; all skip the step)
                (out.loss * scale).backward()
            total += value
            for k, v in out.metrics.items():
                sums[k] = sums.get(k, 0.0) + v
        keys = sorted(sums)
        bad, total, *summed = self._global(float(problem is not None), total, *(sums[k] for k in keys))
        sums = dict(zip(keys, summed, strict=True))
        if bad and problem is None:
            problem = "loss was not finite in another process"
        norm = None if problem else self._clip()
        if problem is None and norm is not None and not math.isfinite(norm):
            problem = f"gradient norm was {norm}"
        if problem is None and units == 0:
            problem = "no target in the step's micro-batches"
        lr = lr_at(self.step, self.total_steps, self.config.lr, self.warmup, self.config.min_lr_ratio)
        if problem is None:
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += tokens
        seconds = time.perf_counter() - t0
        if problem is not None:
            self.skipped += 1
            self.metrics.write({"step": self.step, "skipped": problem})
            self.on_event(Event("skip", self.step, self.total_steps, {"reason": problem}))
            return
        record = {
            "step": self.step, "epoch": epoch, "loss": total / max(units, 1), "lr": lr, "grad_norm": norm,
            "tokens": tokens, "tokens_per_s": tokens / max(seconds, 1e-9),
            "elapsed_s": time.perf_counter() - started,
        } | {k: v / max(units, 1) for k, v in sums.items()}  # fmt: skip
        self.metrics.write(record)
        self.on_event(Event("step", self.step, self.total_steps, record))

    def _clip(self) -> float | None:
        params = [p for p in self.trainable.values() if p.grad is not None]
        if not params:
            return None
        max_norm = self.config.max_grad_norm or float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        return float(distributed.full_tensor(norm))  # sharded gradients give a replicated DTensor

    def _after_step(self) -> str | None:
        """Validation, early stopping and checkpoints after an optimizer step; a reason to stop, or None."""
        last = self.step >= self.total_steps
        evaluated, improved, stop = False, False, None
        if self.val_data is not None and (self.step % self.eval_every == 0 or last):
            evaluated = True
            self.last_eval = self.evaluate()
            self.metrics.write({"step": self.step, **self.last_eval})
            improved = self._track_best(self.last_eval["val_loss"])
            if self.config.patience and self.bad_evals >= self.config.patience:
                stop = "early_stopping"
            self.on_event(Event("eval", self.step, self.total_steps, self.last_eval | {"best": improved}))
        every = self.config.save_every
        due = (every and self.step % every == 0) or (not every and evaluated) or improved
        if due or last or stop:
            self.save_checkpoint()
        return stop

    def _track_best(self, loss: float) -> bool:
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss, self.best_step, self.bad_evals = loss, self.step, 0
            return True
        self.bad_evals += 1
        return False

    # ---- validation --------------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss (mean per unit), perplexity for language modelling, and the objective's metrics."""
        assert self.val_data is not None
        self.model.eval()
        total, units = 0.0, 0
        sums: dict[str, float] = {}
        for batch in self.val_data.batches(0):
            batch = self._to_device(batch)
            out = self._loss(batch)
            total += float(out.loss)
            units += self._units(batch)
            for k, v in out.metrics.items():
                sums[k] = sums.get(k, 0.0) + v
        self.model.train()
        keys = sorted(sums)
        total, units_sum, *summed = self._global(total, units, *(sums[k] for k in keys))
        sums, units = dict(zip(keys, summed, strict=True)), int(units_sum)
        loss = total / max(units, 1)
        result = {"val_loss": loss} | {f"val_{k}": v / max(units, 1) for k, v in sums.items()}
        if self.objective.perplexity:
            result["val_perplexity"] = math.exp(min(loss, 700.0))
        return result

    # ---- checkpoints ---------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step, "epoch": self.epoch, "position": self.position, "total_steps": self.total_steps,
            "best_step": self.best_step, "best_loss": self.best_loss, "bad_evals": self.bad_evals,
            "skipped": self.skipped, "tokens_seen": self.tokens_seen, "first_eval": self.first_eval,
            "last_eval": self.last_eval, "world": self.world,
        }  # fmt: skip

    def save_checkpoint(
        self, rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    ) -> Path | None:
        """Write the checkpoint of the current step atomically, prune old ones, redraw loss.png. With --fsdp
        every process gathers the whole weights and moments first."""
        whole: dict[str, torch.Tensor] | None = None
        moments: dict[str, torch.Tensor] | torch.optim.Optimizer = self.optimizer
        if self.sharded:
            whole = distributed.full_state(self.model)
            moments = ckpt.optimizer_tensors(self.optimizer, self.names)
        if self.rank != 0:
            return None

        def fill(folder: Path) -> None:
            if whole is not None and isinstance(self.saver, ckpt.FullModelSaver):
                self.saver.save(folder, state=whole)
            else:
                self.saver.save(folder)
            ckpt.save_training_state(folder, moments, self.names, self._state(), rng)

        path = ckpt.write_folder_atomically(ckpt.checkpoint_dir(self.run, self.step), fill)
        ckpt.prune(self.run, self.config.keep_last, self.best_step)
        if time.perf_counter() - self._plotted > PLOT_EVERY_S:
            self._plot()
        self.on_event(Event("checkpoint", self.step, self.total_steps, {"path": str(path)}))
        return path

    def _save_interrupted(self, rng_before: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
        """Ctrl-C inside a step: the weights are still those of the last finished step; save them (with the
        RNG state from before the step, so the resumed run repeats the interrupted step exactly). Not with
        --fsdp: gathering the shards needs every process, and after Ctrl-C some may be gone; the run resumes
        from its last checkpoint."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.sharded:
            return
        done = {s for s, _ in ckpt.list_checkpoints(self.run)}
        if self.step and self.step not in done:
            self.save_checkpoint(rng_before)

    def _plot(self) -> None:
        plot_losses(self.metrics.read(), self.run / "loss.png", title=self.run.name)
        self._plotted = time.perf_counter()

    def _resume(self) -> None:
        found = ckpt.list_checkpoints(self.run)
        if not found:
            raise ConfigError(
                f"--resume {self.run}: no checkpoint there yet; start the run again without --resume"
            )
        step, folder = found[-1]
        self.saver.load(folder)
        state = ckpt.load_training_state(folder, self.optimizer, self.names)
        world = state.get("world", 1)  # checkpoints written before the world size was kept: one process
        if world != self.world:  # the global batch, the shards and the step count would all change
            raise ConfigError(
                f"--resume {self.run}: the run was trained with {world} process(es) and this resume has "
                f"{self.world}; resume with --nproc {world} (a different --nproc changes the global batch and "
                f"the data order, so it would not continue the same run)"
            )
        if state["total_steps"] != self.total_steps and not self.config.max_steps:
            raise ConfigError(
                f"--resume {self.run}: the data gives {self.total_steps} steps but the run planned "
                f"{state['total_steps']}; resume with the same data"
            )
        for key in (
            "step",
            "epoch",
            "position",
            "best_step",
            "best_loss",
            "bad_evals",
            "skipped",
            "tokens_seen",
        ):
            setattr(self, key, state[key])
        self.first_eval, self.last_eval = state["first_eval"], state["last_eval"]
        self.metrics.truncate_after(step)

    def _finish(self) -> Path | None:
        """Export the best checkpoint (the last one without validation) to the top of the run folder."""
        if self.rank != 0:
            return None
        found = dict(ckpt.list_checkpoints(self.run))
        chosen = self.best_step if self.best_step in found else max(found, default=None)
        if chosen is None:
            return None
        ckpt.export_model(found[chosen], self.run)
        self._plot()
        return found[chosen]
