"""`llmlab distill`: train a smaller student on a teacher's answers (and next-token distributions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from llmlab.cli.train_output import add_training_arguments
    from llmlab.training.distill import DistillConfig

    parser = subparsers.add_parser(
        "distill",
        help="knowledge distillation: a smaller student learns a task from a teacher",
        description="The teacher answers the prompts (greedy decoding); the student is trained on those "
        "answers (sequence-level distillation) and, when both use the same tokenizer, also on the teacher's "
        "next-token distributions: alpha * T^2 * KL(teacher || student) at temperature T plus (1 - alpha) * "
        "cross-entropy (token-level, Hinton et al. 2015). --student names a model to start from or a config "
        "for a new one (tiny, small, FILE.yaml) that takes the teacher's tokenizer. At the end both models "
        "answer the held-out prompts and a table gives their parameters, speed and score (accuracy against "
        "the prompts' references, or agreement with the teacher). Writes the student, checkpoints, "
        "metrics.jsonl, loss.png, config.yaml and distill.json to --out.",
    )
    add_training_arguments(parser, DistillConfig)
    parser.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    from llmlab.cli.train_output import relaunch, resolve_config, run_training
    from llmlab.training import distributed
    from llmlab.training.distill import REPORT, DistillConfig, distill

    code = relaunch(args)
    if code is not None:
        return code
    config = resolve_config(DistillConfig, args)
    code = run_training(distill, config, args.dry_run, "distill")
    report = Path(config.out) / REPORT
    if code == 0 and not args.dry_run and distributed.rank() == 0 and report.is_file():
        print_report(json.loads(report.read_text(encoding="utf-8")))
    return code


def print_report(report: dict[str, Any]) -> None:
    from llmlab.cli.output import console, print_table

    teacher, student = report["teacher"], report["student"]
    metric = report["metric"]
    rows = []
    for role, m in (("teacher", teacher), ("student", student)):
        rows.append([role, m["name"], m["parameters"], round(m["tokens_per_s"], 1), round(m["score"], 3)])
    print_table(
        f"{report['level']}-level distillation, {report['items']} held-out prompts",
        ["", "model", "parameters", "tokens/s", metric],
        rows,
    )
    size = student["parameters"] / teacher["parameters"]
    share = student["score"] / teacher["score"] if teacher["score"] else float("nan")
    what = "accuracy against the references" if metric == "accuracy" else "answers equal to the teacher's"
    console.print(
        f"student: {size:.1%} of the teacher's parameters, {share:.1%} of its score ({what})", markup=False
    )
