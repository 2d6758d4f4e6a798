"""What the training verbs print: the flags they share, the preview (--dry-run), the progress bar, the summary.

Progress goes to standard error (a rich bar with loss, tokens/s and time left; validation lines above it);
the preview and the final summary go to standard output.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from llmlab.cli.args import add_config_arguments, build_config
from llmlab.cli.output import console, err_console

MASK_OPEN, MASK_CLOSE = "⟦", "⟧"


def add_training_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """The config's flags, plus --config, --dry-run and --nproc."""
    add_config_arguments(parser, cls)
    parser.add_argument("--config", metavar="FILE.yaml", help="settings from a YAML file (flags override)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes on this machine (DDP: gloo on CPU, NCCL on GPU; --batch-size is per "
        "process); runs torchrun --standalone --nproc-per-node N -m llmlab with the same arguments",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show two tokenized examples (prompt tokens, which are not learned, in ⟦ ⟧), token counts and "
        "the memory estimate, then stop",
    )


def resolve_config(cls: type, args: argparse.Namespace) -> Any:
    """Defaults < --config < flags; with --resume, the run's saved config plus the flags it may change."""
    from llmlab.training.config import resumed_config

    given = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(cls)}}
    if given.get("resume"):
        return resumed_config(cls, Path(given["resume"]), given)
    return build_config(cls, args, args.config)


def _gb(n: int) -> str:
    from llmlab.cli.models import format_bytes

    return format_bytes(n)


def print_preview(preview: Any, config: Any, examples: bool = True) -> None:
    """Bad records (stderr), two examples with their prompt tokens marked, counts, the memory estimate."""
    from llmlab.data.tokenize import spans

    tokenizer = preview.tokenizer

    for problem in preview.problems[:10]:
        err_console.print(f"skipped {problem}", markup=False, soft_wrap=True)
    if len(preview.problems) > 10:
        err_console.print(f"... and {len(preview.problems) - 10} more bad records skipped")
    for line in preview.shown if examples else []:
        console.print(line, markup=False)
    for i, ex in enumerate(preview.examples if examples else [], start=1):
        masked = len(ex) - sum(ex.loss_mask)
        console.print(
            f"example {i} ({ex.source}): {len(ex)} tokens, {masked} prompt tokens {MASK_OPEN}not learned"
            f"{MASK_CLOSE}, {sum(ex.loss_mask)} learned" + (" (cut to --seq-len)" if ex.truncated else ""),
            markup=False,
        )
        text = "".join(t if learned else f"{MASK_OPEN}{t}{MASK_CLOSE}" for t, learned in spans(tokenizer, ex))
        console.print(text, markup=False)
    stats = preview.stats
    console.print(", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in stats.items()), markup=False)
    if preview.memory is not None:
        available = f"{_gb(preview.available)} available" if preview.available else "available memory unknown"
        console.print(
            f"memory estimate: {_gb(preview.memory.total)} (fp32 weights, gradients and AdamW, batch "
            f"{config.batch_size} × {preview.seq_len} tokens, the longest row); {available}",
            markup=False,
        )


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


class ProgressBar:
    """Turns the loop's events into a rich progress bar on standard error."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]training[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.task: Any = None
        self.started = time.perf_counter()

    def __call__(self, event: Any) -> None:
        p = self.progress
        if event.kind == "start":
            p.start()
            self.task = p.add_task(
                "train", total=event.total_steps, completed=event.step, loss="-", speed="-"
            )
        elif event.kind == "step":
            d = event.data
            p.update(
                self.task, completed=event.step, loss=f"{d['loss']:.3f}", speed=f"{d['tokens_per_s']:,.0f}"
            )
        elif event.kind == "eval":
            line = f"step {event.step}: validation loss {event.data['val_loss']:.3f}"
            if "val_perplexity" in event.data:
                line += f", perplexity {event.data['val_perplexity']:.2f}"
            elif "val_accuracy" in event.data:
                line += f", accuracy {event.data['val_accuracy']:.3f}"
            p.console.print(line + (" (best)" if event.data.get("best") else ""), highlight=False)
        elif event.kind == "skip":
            p.update(self.task, completed=event.step)
            p.console.print(f"[yellow]step {event.step} skipped[/yellow]: {event.data['reason']}")
        elif event.kind == "end":
            p.stop()

    def stop(self) -> None:
        self.progress.stop()


def print_summary(result: Any, preview: Any, out: str, seconds: float, adapter_of: str | None = None) -> None:
    """What the run reached and where the model (or the adapter of base model `adapter_of`) is."""
    console.print(
        f"trained {result.steps} steps in {seconds:.1f} s ({result.stopped.replace('_', ' ')})", markup=False
    )
    if result.skipped_steps:
        console.print(f"skipped steps (NaN/inf loss or gradient): {result.skipped_steps}", markup=False)
    last, first = result.last_eval, result.first_eval
    if last:
        line = f"validation loss {last['val_loss']:.3f}"
        if "val_perplexity" in last:
            line += f", perplexity {last['val_perplexity']:.2f}"
            if first:
                line += f" (before training {first['val_perplexity']:.2f})"
        elif "val_accuracy" in last:
            line += f", accuracy {last['val_accuracy']:.3f}"
        console.print(line, markup=False)
    if "unigram_perplexity" in preview.stats:
        console.print(f"unigram baseline perplexity {preview.stats['unigram_perplexity']:.2f}", markup=False)
    if result.final is not None:
        which = (
            f"best validation loss, step {result.best_step}" if result.best_step else f"step {result.steps}"
        )
        what = "adapter" if adapter_of else "model"
        console.print(f"{what}: {out} ({which}); metrics.jsonl, loss.png, config.yaml", markup=False)
        if adapter_of and _labelled(Path(out)):  # a classifier: the adapter carries its head and labels
            console.print(f"run it with: llmlab classify --model {out} TEXT", markup=False)
        elif _span_reader(Path(out)):
            console.print(
                f"run it with: llmlab rag ask QUESTION --store NAME --answer-style reader --reader {out}",
                markup=False,
            )
        elif adapter_of:
            console.print(f"run it with: llmlab generate --model {adapter_of} --adapter {out}", markup=False)


def _span_reader(folder: Path) -> bool:
    """Whether the run trained a span reader (--task extractive-qa: a QUESTION_ANS adapter or QA model)."""
    import json

    adapter, model = folder / "adapter_config.json", folder / "config.json"
    if adapter.is_file():
        return bool(json.loads(adapter.read_text(encoding="utf-8")).get("task_type") == "QUESTION_ANS")
    if model.is_file():
        names = json.loads(model.read_text(encoding="utf-8")).get("architectures") or []
        return any(str(n).endswith("ForQuestionAnswering") for n in names)
    return False


def _labelled(folder: Path) -> bool:
    """Whether the adapter at the top of a run folder is a classifier's (it keeps label names)."""
    import json

    meta = folder / "llmlab_adapter.json"
    return meta.is_file() and bool(json.loads(meta.read_text(encoding="utf-8")).get("labels"))


def relaunch(args: argparse.Namespace) -> int | None:
    """With --nproc N > 1 (and not already under torchrun): run the same command in N processes; else None."""
    from llmlab.training import distributed

    if getattr(args, "nproc", 1) <= 1 or distributed.launched():
        return None
    argv, n = distributed.strip_nproc(args.argv)
    return distributed.launch(argv, n)


def run_training(recipe: Any, config: Any, dry_run: bool, verb: str, adapter_of: str | None = None) -> int:
    """Run a recipe (`pretrain`, `finetune`, ...) with the preview, the progress bar and the summary;
    `adapter_of` names the base model of a recipe that saves an adapter.

    Under torchrun only rank 0 prints; every process runs the recipe (the Trainer joins the group)."""
    from llmlab.training import distributed

    if distributed.rank() != 0:
        try:
            recipe(config, dry_run=dry_run)
        finally:
            _leave_group()
        return 0
    try:
        return _run_rank0(recipe, config, dry_run, verb, adapter_of)
    finally:
        _leave_group()


def _leave_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _run_rank0(recipe: Any, config: Any, dry_run: bool, verb: str, adapter_of: str | None) -> int:
    if dry_run:
        preview, _ = recipe(config, dry_run=True)
        print_preview(preview, config)
        return 0
    bar = ProgressBar()

    def on_event(event: Any) -> None:
        if event.kind == "preview":
            print_preview(event.data["preview"], config, examples=False)
        else:
            bar(event)

    started = time.perf_counter()
    try:
        preview, result = recipe(config, on_event=on_event)
    except KeyboardInterrupt:
        bar.stop()
        err_console.print(f"interrupted; continue with: llmlab {verb} --resume {config.out}")
        raise
    finally:
        bar.stop()
    print_summary(result, preview, config.out, time.perf_counter() - started, adapter_of)
    return 0
