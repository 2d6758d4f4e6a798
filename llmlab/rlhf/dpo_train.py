"""`llmlab align dpo`: direct preference optimisation of a causal LM on preference pairs, on the shared loop.

    loss = -log sigma(beta * ((log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x))))
           [+ rpo_alpha * NLL of the chosen completions, per token]        (--rpo-alpha: RPO)

(Rafailov et al., 2023, arXiv:2305.18290; the variants of `DPO_LOSSES`: sigmoid, ipo, robust, hinge, in
llmlab/rlhf/dpo.py, each equal to trl's.) Recipe: read the pairs (`file:line` errors), hold out
--val-fraction by seed (or --val), encode each side after its prompt as generation renders it, cut to
--seq-len; put a LoRA adapter on the model (the default; --no-lora trains every weight); compute the reference
log-probs once per pair; then `Trainer` with `DPOObjective`, which runs only the policy, chosen and rejected
sides in one forward (2B rows), with the vocabulary projection on completion tokens only, in chunks whose
logits are recomputed in the backward pass rather than kept (llmlab/rlhf/policy.py).

The reference is the base model with the adapters disabled (`disable_adapters`), never a second copy, and
its log-probs are precomputed once, before the first step, because the reference never changes: each step
then costs one policy forward and backward instead of two forwards and a backward, and the reference's
activations never sit beside the policy's. They are written to the run folder (reference_logps.safetensors),
so a resumed run, whose model is no longer the reference, reads them back; this is also why --no-lora needs no
frozen copy. They are computed under the same precision (autocast) as training, so the implicit rewards start
at exactly 0.

Reported per step and on the held-out pairs: reward accuracy (the chosen side's implicit reward higher), the
margin of implicit rewards, the chosen side's implicit reward (below 0: DPO lowered the chosen completions'
likelihood; --rpo-alpha keeps it up), and the policy's log-prob margin log pi(y_c|x) - log pi(y_r|x), which DPO raises.
The run folder's top is the best checkpoint's adapter (`llmlab generate --adapter RUN`).
Tests: tests/rlhf/test_dpo_train.py (margin and preferred-behaviour rate rise on a tiny model; resume).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmlab.data.tokenize import Tokenized
from llmlab.errors import ConfigError, DataError
from llmlab.rlhf.dpo import DPO_LOSSES, with_rpo
from llmlab.rlhf.pair_data import EncodedPair, PairBatches, collate_pairs, encode_dpo_pair
from llmlab.rlhf.policy import score_completions
from llmlab.rlhf.recipe import (
    LoraSettings,
    add_lora,
    check_pair_inputs,
    decoder_files,
    load_pair_split,
    resume_from,
)
from llmlab.training.config import TrainConfig
from llmlab.training.loop import Event, Trainer, TrainResult, resolve_precision
from llmlab.training.objective import Batch, LossOutput
from llmlab.training.run import Preview, prepare_out, require_out, seed_everything

REFERENCE = "reference_logps.safetensors"


@dataclass
class DPOConfig(LoraSettings, TrainConfig):
    """DPO on preference pairs."""

    model: str = ""
    """The policy to align: a packaged model name, a Hugging Face checkpoint folder or a .gguf file."""
    pairs: str = ""
    """Preference pairs, JSONL: {"prompt", "chosen", "rejected"} a line (`llmlab feedback pairs` writes them)."""
    val: str = ""
    """Held-out pairs in the same format (default: hold out --val-fraction of --pairs)."""
    val_fraction: float = 0.1
    """Share of --pairs held out for validation when --val is not given (0: none)."""
    beta: float = 0.1
    """beta: how far the policy may move from the reference (larger stays closer)."""
    loss: str = "sigmoid"
    """sigmoid (DPO), ipo, robust (rDPO) or hinge (SLiC)."""
    label_smoothing: float = 0.0
    """Assumed share of flipped preference labels, in [0, 0.5) (sigmoid: conservative DPO; robust)."""
    rpo_alpha: float = 0.0
    """RPO: add this weight times the chosen completions' per-token NLL to the loss (0: plain DPO; 1.0 is the
    published value; it keeps DPO from lowering the chosen completions' likelihood)."""
    chat: bool = True
    """Render each prompt through the model's chat template, as `llmlab feedback generate` did (--no-chat: as is)."""
    lr: float = 1e-4
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    batch_size: int = 4
    """Pairs per micro-batch (each pair is two sequences)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pair_inputs(
            self.model, self.pairs, self.val_fraction, "the model to align (e.g. smollm2-135m-instruct)"
        )
        if self.loss not in DPO_LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(DPO_LOSSES)}, got {self.loss!r}")
        if not self.beta > 0:
            raise ConfigError(f"--beta must be > 0, got {self.beta}; 0.1 is the usual value")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not self.rpo_alpha >= 0:
            raise ConfigError(
                f"--rpo-alpha must be >= 0, got {self.rpo_alpha}; 1.0 is the published value, 0 turns it off"
            )


class DPOObjective:
    """A DPO-family loss summed over a micro-batch's pairs, from the policy and the precomputed reference."""

    perplexity = False

    def __init__(
        self, loss: str = "sigmoid", beta: float = 0.1, label_smoothing: float = 0.0, rpo_alpha: float = 0.0
    ):
        self.loss_fn, self.beta, self.label_smoothing = DPO_LOSSES[loss], beta, label_smoothing
        self.rpo_alpha = rpo_alpha

    def units(self, batch: Batch) -> int:
        return int(batch["input_ids"].shape[0]) // 2

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"])

    def loss(self, model: Any, batch: Batch) -> LossOutput:
        n = self.units(batch)
        logps = score_completions(model, batch["input_ids"], batch["completion_mask"]).sequence_logprobs()
        ref = batch["ref_logps"]
        lengths = batch["completion_mask"][:, 1:].sum(dim=1).float()
        out = self.loss_fn(
            logps[:n], logps[n:], ref[:n], ref[n:], beta=self.beta, label_smoothing=self.label_smoothing,
            chosen_lengths=lengths[:n], rejected_lengths=lengths[n:],
        )  # fmt: skip
        out = with_rpo(out, logps[:n], lengths[:n], self.rpo_alpha)
        gap = (logps[:n] - logps[n:]).detach()
        metrics = {
            "reward_accuracy": float((out.margins > 0).float().sum()),
            "reward_margin": float(out.margins.sum()),
            "chosen_reward": float(out.chosen_rewards.sum()),
            "logp_margin": float(gap.sum()),
        }
        return LossOutput(out.loss * n, metrics)


def encode_pairs(
    pairs: list[tuple[Any, str]], tokenizer: Any, stops: set[int], config: DPOConfig
) -> tuple[list[EncodedPair], list[str]]:
    """Encoded pairs, and the problems of those left out (no completion token within --seq-len)."""
    encoded, problems = [], []
    for pair, where in pairs:
        found = encode_dpo_pair(tokenizer, pair, stops, config.seq_len, config.chat, where)
        if found is None:
            problems.append(f"{where}: the prompt fills --seq-len {config.seq_len}; pair left out")
        else:
            encoded.append(found)
    return encoded, problems


@torch.no_grad()
def reference_logps(
    model: Any, pairs: list[EncodedPair], pad_id: int, batch_size: int, autocast: Any
) -> torch.Tensor:
    """(P, 2) log ref(chosen | x), log ref(rejected | x) of every pair: the model with its adapters disabled."""
    from llmlab.peft.registry import disable_adapters

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with disable_adapters(model):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = collate_pairs(chunk, pad_id)
            with autocast():
                logps = score_completions(
                    model, batch["input_ids"].to(device), batch["completion_mask"].to(device)
                ).sequence_logprobs()
            n = len(chunk)
            out.append(torch.stack([logps[:n], logps[n:]], dim=1).cpu())
    model.train(was_training)
    return torch.cat(out)


def attach_reference(
    run: Path, model: Any, train: list[EncodedPair], val: list[EncodedPair], pad: int, config: DPOConfig
) -> float:
    """Fill every pair's `ref_logps`: read from the run folder, or computed now and saved; returns seconds."""
    import time

    from safetensors.torch import load_file, save

    from llmlab.training.checkpoint import atomic_write_bytes
    from llmlab.training.distributed import rank

    path = run / REFERENCE
    started = time.perf_counter()
    writer = rank() == 0  # with --nproc every process computes the same values; one writes them
    if not config.resume and writer:
        path.unlink(missing_ok=True)  # another run's, in a reused --out folder
    if config.resume and path.is_file():
        saved = load_file(path)
        ref_train, ref_val = saved["train"], saved["val"]
        if len(ref_train) != len(train) or len(ref_val) != len(val):
            raise DataError(
                f"{path} holds reference log-probs of {len(ref_train)} + {len(ref_val)} pairs, but the data "
                f"gives {len(train)} + {len(val)}; resume with the same pairs, or start a new run"
            )
    else:
        device = next(model.parameters()).device
        dtype = resolve_precision(config.precision, device)

        def autocast() -> Any:
            return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

        ref_train = reference_logps(model, train, pad, config.batch_size * 2, autocast)
        ref_val = (
            reference_logps(model, val, pad, config.batch_size * 2, autocast) if val else torch.zeros(0, 2)
        )
        if writer:  # two processes renaming the same temporary file: one of them found it gone
            atomic_write_bytes(path, save({"train": ref_train, "val": ref_val}))
    for pairs, values in ((train, ref_train), (val, ref_val)):
        for pair, (chosen, rejected) in zip(pairs, values.tolist(), strict=True):
            pair.ref_logps = (chosen, rejected)
    return time.perf_counter() - started


def train_dpo(
    config: DPOConfig, on_event: Callable[[Event], None] | None = None, dry_run: bool = False
) -> tuple[Preview, TrainResult | None]:
    """Align `config.model` with DPO; with `dry_run`, only prepare and report."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from llmlab.models.loading import resolve_device
    from llmlab.rlhf.recipe import AdapterSaver
    from llmlab.training.checkpoint import FullModelSaver

    hf_logging.disable_progress_bar()
    require_out(config, dry_run)
    resume = resume_from(config) if not dry_run else False
    seed_everything(config.seed)
    folder, tokenizer, _, stops = decoder_files(config.model, "--model")
    train_pairs, val_pairs = load_pair_split(config.pairs, config.val, config.val_fraction, config.seed)
    train, problems = encode_pairs(train_pairs, tokenizer, stops, config)
    val, val_problems = encode_pairs(val_pairs, tokenizer, stops, config)
    if not train:
        raise DataError(f"{config.pairs}: no pair left to train on ({'; '.join(problems[:3])})")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = PairBatches(train, config.batch_size, pad, seed=config.seed)
    examples = [
        Tokenized(side.input_ids, side.completion_mask or [], f"{train[0].source} ({name})")
        for name, side in (("chosen", train[0].chosen), ("rejected", train[0].rejected))
    ]
    stats: dict[str, float] = {
        "pairs": len(train), "val_pairs": len(val), "tokens": sum(p.tokens for p in train),
        "steps_per_epoch": -(-len(batches) // config.grad_accum),
    }  # fmt: skip
    preview = Preview(examples, stats, problems + val_problems, seq_len=batches.longest, tokenizer=tokenizer)
    if dry_run:
        return preview, None
    run = prepare_out(config, resume)
    device = resolve_device(config.device)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.to(device)
    lora = add_lora(model, config) if config.lora else None
    stats["reference_seconds"] = attach_reference(run, model, train, val, pad, config)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    stats["trainable"] = sum(p.numel() for p in trainable.values())
    saver: Any = (
        AdapterSaver(model, model, list(trainable), tokenizer, config.model)
        if lora
        else FullModelSaver(model, tokenizer)
    )
    if on_event:
        on_event(Event("preview", 0, 0, {"preview": preview}))
    val_batches = PairBatches(val, config.batch_size, pad, shuffle=False) if val else None
    objective = DPOObjective(config.loss, config.beta, config.label_smoothing, config.rpo_alpha)
    trainer = Trainer(
        model, objective, batches, config, trainable=trainable, val_data=val_batches, saver=saver,
        on_event=on_event, eval_at_start=True,
    )  # fmt: skip
    return preview, trainer.fit(resume=resume)
