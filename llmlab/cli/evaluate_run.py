"""`llmlab eval run` (evaluate a model, optionally with an adapter of any kind, on a task) and `llmlab eval
compare` (runs side by side with paired-bootstrap confidence intervals). Hooked into the `eval` group by `register_run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from llmlab.cli.args import add_config_arguments, build_config, config_values
from llmlab.cli.output import console, err_console, print_json, print_table
from llmlab.cli.session import add_model_arguments, load_engine

SAMPLING_KNOBS = ("temperature", "top_k", "top_p", "min_p", "seed")

RUN_HELP = (
    "Evaluate a model on a task: build each item's prompt (instruction, --shots examples, the item), generate "
    "the answers in batches, post-process and score them, and report the metrics as a table, JSON (--json, "
    "--output) and Markdown (--markdown). Tasks: classify (data {'input', 'label'}; accuracy), qa ({'input', "
    "'reference'}; SQuAD exact match and F1), summarize ({'input', 'reference'}; ROUGE-1/2/L), translate "
    "({'input', 'reference'}; BLEU, chrF), or a task FILE.yaml. A reference may be a list of acceptable "
    "answers; an optional 'id' per record pairs items in `eval compare`. Decoding is greedy by default "
    "(deterministic); --no-greedy, or any of --temperature/--top-k/--top-p/--min-p/--seed, samples instead. "
    "--max-new-tokens defaults to the task's own setting."
)


def register_run(subparsers: Any) -> None:
    """Add `run` and `compare` to the `llmlab eval` sub-command group."""
    from llmlab.generation.config import GenerationConfig

    run = subparsers.add_parser(
        "run", help="evaluate a model (and an optional adapter) on a task", description=RUN_HELP
    )
    add_model_arguments(run)
    run.add_argument(
        "--adapter",
        metavar="DIR",
        help="an adapter to evaluate the model with: a training run folder or an adapter folder (LoRA, prompt "
        "tuning, bottleneck adapters, selective; llmlab's or peft's)",
    )
    run.add_argument("--task", required=True, help="classify, qa, summarize, translate, or a task FILE.yaml")
    run.add_argument(
        "--data", required=True, metavar="FILE.jsonl", help="the items to evaluate, one JSON object a line"
    )
    run.add_argument(
        "--shots", type=int, default=0, metavar="K", help="examples per prompt (0, 1, 3, ...; default 0)"
    )
    run.add_argument(
        "--shots-file",
        metavar="FILE.jsonl",
        help="where the examples come from (same fields as --data): its first K items other than the evaluated "
        "one; default: the first K other items of --data",
    )
    run.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N items")
    run.add_argument("--batch-size", type=int, default=8, help="prompts generated together (default: 8)")
    run.add_argument(
        "--name", help="the run's name in tables and `eval compare` (default: model, adapter, shots)"
    )
    run.add_argument("--json", action="store_true", help="print the full results (with every item) as JSON")
    run.add_argument(
        "--output", metavar="FILE.json", help="write the full results as JSON (input to eval compare)"
    )
    run.add_argument("--markdown", metavar="FILE.md", help="write the scores as a Markdown table")
    add_config_arguments(run, GenerationConfig, skip=("logprobs",))
    for action in run._actions:  # evaluation's own defaults, not `llmlab generate`'s
        if action.dest == "max_new_tokens":
            action.help = "stop after this many generated tokens (default: the task's max_new_tokens)"
        elif action.dest == "greedy":
            action.help = "take the most likely token (default for evaluation; --no-greedy samples)"
    run.add_argument(
        "--config", metavar="FILE.yaml", help="decoding settings from a YAML file (flags override)"
    )
    run.set_defaults(func=run_eval)

    compare = subparsers.add_parser(
        "compare",
        help="put evaluation runs side by side, with the difference and its confidence interval",
        description="Compare results files from `llmlab eval run --output` (base vs fine-tuned, zero-shot vs "
        "few-shot). The first file is the baseline; each other run gets its difference from it and a paired "
        "bootstrap confidence interval: items are resampled with replacement (the same draw for both runs) and "
        "the metric recomputed. Items pair by their 'id' when the data has ids, by position otherwise; runs over "
        "different data are refused.",
    )
    compare.add_argument("results", nargs="+", metavar="RESULTS.json", help="two or more results files")
    compare.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default: 1000)"
    )
    compare.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    compare.add_argument("--confidence", type=float, default=0.95, help="interval level (default: 0.95)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument("--markdown", metavar="FILE.md", help="write the comparison as a Markdown table")
    compare.set_defaults(func=run_compare)


def generation_config(args: argparse.Namespace, task: Any) -> Any:
    """Task defaults (greedy unless a sampling knob is set, its max_new_tokens and stop strings) < --config
    YAML < flags."""
    from llmlab.generation.config import GenerationConfig

    chosen = config_values(GenerationConfig, args, args.config)
    greedy = not any(k in chosen for k in SAMPLING_KNOBS)
    defaults = {"greedy": greedy, "max_new_tokens": task.max_new_tokens, "stop": list(task.stop)}
    return build_config(GenerationConfig, chosen, defaults=defaults)


class _Bar:
    """A rich progress bar on stderr, fed by the harness's (done, total) callback."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task("", total=None)

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _items(args: argparse.Namespace, task: Any) -> tuple[list[Any], list[Any], list[str]]:
    """(items to evaluate, few-shot pool, labels). Labels come from the whole data file and the shots file,
    so --limit does not change the prompt."""
    from llmlab.errors import ConfigError
    from llmlab.evaluation.task import read_items, task_labels

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.shots < 0:
        raise ConfigError(f"--shots must be >= 0, got {args.shots}")
    data = read_items(args.data, task)
    pool = read_items(args.shots_file, task) if args.shots_file else data
    if args.shots and len(pool) - (0 if args.shots_file else 1) < args.shots:
        source = args.shots_file or args.data
        raise ConfigError(f"--shots {args.shots} needs at least that many other items in {source}")
    return data[: args.limit] if args.limit else data, pool, task_labels(task, data, pool)


def run_eval(args: argparse.Namespace) -> int:
    from llmlab.evaluation.harness import RunInfo, evaluate
    from llmlab.evaluation.task import load_task

    task = load_task(args.task)
    config = generation_config(args, task)
    items, pool, labels = _items(args, task)
    loaded, engine = load_engine(args)
    shots_source = args.shots_file or (args.data if args.shots else None)
    info = RunInfo(loaded.name, args.adapter, args.data, shots_source, args.name or "")
    with _Bar(f"evaluating {len(items)} items") as bar:
        run = evaluate(
            engine, task, items, config, shots=args.shots, pool=pool, labels=labels,
            batch_size=args.batch_size, on_progress=bar, info=info,
        )  # fmt: skip
    _report_run(args, run)
    return 0


def _report_run(args: argparse.Namespace, run: Any) -> None:
    from llmlab.evaluation.report import run_markdown, run_notes, run_rows, run_title

    if args.output:
        _write(args.output, json.dumps(run.to_json(), indent=2, ensure_ascii=False) + "\n")
    if args.markdown:
        _write(args.markdown, run_markdown(run))
    if args.json:
        print_json(run.to_json())
        return
    print_table(run_title(run), ["metric", "value"], run_rows(run))
    for note in run_notes(run):
        console.print(f"[dim]{note}[/dim]")


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    err_console.print(f"[dim]wrote {target}[/dim]")


def run_compare(args: argparse.Namespace) -> int:
    from llmlab.evaluation.compare import compare_runs, load_run
    from llmlab.evaluation.report import (
        comparison_columns,
        comparison_markdown,
        comparison_note,
        comparison_rows,
    )

    runs = [load_run(path) for path in args.results]
    comparison = compare_runs(runs, args.bootstrap, args.seed, args.confidence)
    if args.markdown:
        _write(args.markdown, comparison_markdown(comparison))
    if args.json:
        print_json(dataclasses.asdict(comparison))
        return 0
    print_table(
        f"{comparison.task} ({comparison.items} items)",
        comparison_columns(comparison),
        comparison_rows(comparison),
    )
    console.print(f"[dim]{comparison_note(comparison)}[/dim]")
    return 0
