"""`llmlab pretrain`: train a small language model from scratch, or continue pretraining one (--init-from)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from llmlab.cli.train_output import add_training_arguments
    from llmlab.training.pretrain import PretrainConfig

    parser = subparsers.add_parser(
        "pretrain",
        help="train a language model on plain text: from scratch, or continued (--init-from)",
        description="Pretrain a Llama-style decoder on text (packed rows, no attention across documents), or "
        "continue pretraining a model on domain text with --init-from. Reports validation perplexity before "
        "and after, and the unigram baseline. Writes checkpoints, metrics.jsonl, loss.png and config.yaml to "
        "--out; the final model at the top of --out loads with `llmlab generate --model OUT`.",
    )
    add_training_arguments(parser, PretrainConfig)
    parser.set_defaults(func=run_pretrain)


def run_pretrain(args: argparse.Namespace) -> int:
    from llmlab.cli.train_output import relaunch, resolve_config, run_training
    from llmlab.training.pretrain import PretrainConfig, pretrain

    code = relaunch(args)
    if code is not None:
        return code
    return run_training(pretrain, resolve_config(PretrainConfig, args), args.dry_run, "pretrain")
