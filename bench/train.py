"""Full fine-tuning speed and peak memory: llmlab's training loop vs the transformers `Trainer`, same run.

    python bench/train.py [--steps 8] [--threads 2] [--seq-len 256] [--batch-size 4] [--precision fp32]

SmolLM2-135M, every weight trained (AdamW, lr 1e-5, warmup then cosine, clipping at 1.0, weight decay 0.01),
causal language modelling on rows of --seq-len tokens cut from this repository's user guide (docs/*.md,
tokenized with SmolLM2's tokenizer), --batch-size rows per step, no gradient accumulation, no evaluation, no
checkpoint. Each side runs in its own process (so that its peak resident memory is its own), one after the
other, with the same thread count: ours is `llmlab.training.Trainer` with `CausalLMObjective`; the reference
is `transformers.Trainer` (`TrainingArguments` with the same settings, `adamw_torch`). Tokens/s is the
median over the steps after the first (warm-up) of seq-len × batch-size tokens per optimizer step; peak
memory is the process's maximum resident set (weights, gradients, AdamW's two moments, activations, and the
Python and library code both load). Target (issue 9): ours ≥ 1.0× the reference's tokens/s at no more than
its peak memory. Measured on the project's shared machine under other engineers' load: see the printed
ratio, and rerun on a quiet machine for the absolute figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `python bench/train.py` puts bench/ first on sys.path, where bench/peft.py would shadow the peft package that
# transformers' Trainer imports: this script imports nothing from bench/, so the folder is dropped.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

MODEL = "smollm2-135m-instruct"
DOCS = Path(__file__).resolve().parents[1] / "docs"


PEAK: list[int] = []  # the process's peak resident memory after each step


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def token_rows(tokenizer, seq_len: int, count: int) -> list[list[int]]:
    """`count` rows of `seq_len` tokens from the guide (repeated if it is shorter)."""
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))
    ids = tokenizer(text)["input_ids"]
    while len(ids) < seq_len * count:
        ids = ids + ids
    return [ids[i * seq_len : (i + 1) * seq_len] for i in range(count)]


def run_ours(model, rows: list[list[int]], args: argparse.Namespace, out: str) -> list[float]:
    from llmlab.data.packing import IGNORE, Row
    from llmlab.training import CausalLMObjective, TrainConfig, Trainer
    from llmlab.training.batches import RowBatches

    data = [Row(r, [*r[1:], IGNORE], list(range(len(r)))) for r in rows]  # targets[t] = input[t + 1]
    config = TrainConfig(
        out=out, max_steps=args.steps, lr=1e-5, batch_size=args.batch_size, seq_len=args.seq_len,
        weight_decay=0.01, precision=args.precision, save_every=10**6, eval_every=10**6,
    )  # fmt: skip
    stamps: list[float] = []

    def clock(event) -> None:
        if event.kind in ("start", "step"):
            stamps.append(time.perf_counter())
            PEAK.append(peak_rss())

    trainer = Trainer(
        model, CausalLMObjective(), RowBatches(data, args.batch_size, pad_id=0), config, on_event=clock
    )
    trainer.fit()  # (the checkpoint written after the last step is neither timed nor in the peak)
    return [b - a for a, b in itertools.pairwise(stamps)]


def run_reference(model, rows: list[list[int]], args: argparse.Namespace, out: str) -> list[float]:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **kw):
            if not stamps:
                stamps.append(time.perf_counter())

        def on_step_end(self, *a, **kw):
            stamps.append(time.perf_counter())
            PEAK.append(peak_rss())

    training_args = TrainingArguments(
        output_dir=out, max_steps=args.steps, learning_rate=1e-5, per_device_train_batch_size=args.batch_size,
        weight_decay=0.01, warmup_steps=0.05, lr_scheduler_type="cosine", max_grad_norm=1.0,
        optim="adamw_torch", bf16=args.precision == "bf16", save_strategy="no", eval_strategy="no",
        report_to=[], logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, use_cpu=True,
        seed=0,
    )  # fmt: skip
    dataset = [{"input_ids": r, "labels": r} for r in rows]  # the model shifts the labels itself
    Trainer(model=model, args=training_args, train_dataset=dataset, callbacks=[Clock()]).train()
    return [b - a for a, b in itertools.pairwise(stamps)]


def side(args: argparse.Namespace) -> None:
    """One side in this process; prints one JSON line: step seconds and peak resident memory."""
    import torch

    from llmlab.models import load_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loaded = load_model(MODEL, device="cpu")
    model = loaded.model.train()
    rows = token_rows(loaded.tokenizer, args.seq_len, args.steps * args.batch_size)
    run = run_ours if args.side == "ours" else run_reference
    with tempfile.TemporaryDirectory() as out:
        seconds = run(model, rows, args, out)
    print(json.dumps({"seconds": seconds, "peak_bytes": max(PEAK)}))


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--side",
        name,
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
    ]
    command += [
        "--seq-len",
        str(args.seq_len),
        "--batch-size",
        str(args.batch_size),
        "--precision",
        args.precision,
    ]
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    timed = result["seconds"][1:] or result["seconds"]  # the first step warms up allocators and kernels
    step = statistics.median(timed)
    tokens = args.seq_len * args.batch_size
    row = {"step_s": step, "tokens_per_s": tokens / step, "peak_gb": result["peak_bytes"] / 1e9}
    print(
        f"{name:<10} {row['step_s']:8.2f} s/step {row['tokens_per_s']:8.1f} tok/s {row['peak_gb']:6.2f} GB peak"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps", type=int, default=8, help="optimizer steps per side (the first is warm-up)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--side", choices=("ours", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    print(
        f"SmolLM2-135M full fine-tuning, seq {args.seq_len} x batch {args.batch_size}, {args.precision}, "
        f"{args.threads} threads, median of {max(args.steps - 1, 1)} steps after a warm-up step"
    )
    ours = measure("ours", args)
    reference = measure("reference", args)
    print(
        f"ratio (ours / transformers Trainer): tokens/s {ours['tokens_per_s'] / reference['tokens_per_s']:.2f}x, "
        f"peak memory {ours['peak_gb'] / reference['peak_gb']:.2f}x (target: tokens/s >= 1.0x at memory <= 1.0x)"
    )


if __name__ == "__main__":
    main()
