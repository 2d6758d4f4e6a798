"""`llmlab finetune METHOD`: supervised fine-tuning; `full` trains every weight, `lora`, `adapters`,
`prompt-tuning` and `selective` train a small set of parameters (llmlab.training.peft_finetune)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from llmlab.cli.train_output import add_training_arguments
    from llmlab.training.finetune import FinetuneConfig

    parser = subparsers.add_parser(
        "finetune", help="fine-tune a model: instructions and chat, classification, seq2seq"
    )
    sub = parser.add_subparsers(dest="finetune_method", metavar="METHOD")
    parser.set_defaults(func=lambda _: parser.print_help())
    full = sub.add_parser(
        "full",
        help="train every weight (supervised fine-tuning)",
        description="Supervised fine-tuning of every weight on JSONL records. --task causal-lm (decoder-only "
        'models): {"text"}, {"instruction", "input"?, "output"} or {"messages"}; the loss is on the '
        "completion tokens only, with prompts rendered exactly as `llmlab generate` renders them (the model's "
        'chat template). --task classify (encoder-only models such as minilm-l6): {"text", "label"}, with a '
        "classification head; use the result with `llmlab classify`. --task extractive-qa (encoder-only): "
        '{"question", "context", "answer" or null, "answer_start"?}, a start/end span head (SQuAD 2.0; use '
        "the result with `llmlab rag ask --answer-style reader --reader OUT`). --task seq2seq (encoder-decoder models; "
        '--model t5-tiny builds a new one): {"source", "target"} or instruction records. Writes checkpoints, '
        "metrics.jsonl, loss.png and config.yaml to --out; the final model at the top of --out is a Hugging "
        "Face checkpoint (`llmlab generate --model OUT` for the generative kinds).",
    )
    add_training_arguments(full, FinetuneConfig)
    full.set_defaults(func=run_full)
    from llmlab.training.peft_finetune import CONFIGS

    for method, cls in CONFIGS.items():
        help_text, what = PEFT_HELP[method]
        peft = sub.add_parser(
            method,
            help=help_text,
            description=f"{what} The base model stays frozen; only the trained tensors are saved, as an adapter "
            "folder at every checkpoint and at the top of --out, which `llmlab generate --adapter OUT`, "
            "`llmlab chat --adapter OUT` and `llmlab peft merge OUT` read. Data formats, the loss on completion "
            "tokens only, --dry-run, the memory check, metrics.jsonl, loss.png and --resume are those of "
            "`finetune full`. Trainable vs total parameters are printed before training.",
        )
        add_training_arguments(peft, cls)
        peft.set_defaults(func=run_peft, peft_config=cls)


PEFT_HELP = {
    "lora": (
        "LoRA: train low-rank updates of chosen linear layers",
        "LoRA (Hu et al., 2021): each chosen linear layer computes W x + (alpha / rank) B A x with small trained "
        "matrices A and B (B starts at zero).",
    ),
    "adapters": (
        "bottleneck adapters after each attention and feed-forward sublayer",
        "Bottleneck adapters (Houlsby et al., 2019): h + W_up σ(W_down h) after each attention and feed-forward "
        "sublayer, W_up zero at the start.",
    ),
    "prompt-tuning": (
        "prompt tuning: train virtual-token embeddings put before every input",
        "Prompt tuning (Lester et al., 2021): --virtual-tokens trained embeddings are put before every input; "
        "the model itself does not change.",
    ),
    "selective": (
        "train a chosen subset of the model's own parameters (BitFit, norms, last layers, names)",
        "Selective fine-tuning: train only --train: bias (BitFit), norms, last-layers:N, or parameter names "
        "matching a regex.",
    ),
}


def run_full(args: argparse.Namespace) -> int:
    from llmlab.cli.train_output import relaunch, resolve_config, run_training
    from llmlab.training.finetune import FinetuneConfig, finetune

    code = relaunch(args)
    if code is not None:
        return code
    return run_training(finetune, resolve_config(FinetuneConfig, args), args.dry_run, "finetune full")


def run_peft(args: argparse.Namespace) -> int:
    from llmlab.cli.train_output import relaunch, resolve_config, run_training
    from llmlab.training.peft_finetune import finetune_peft, method_of

    code = relaunch(args)
    if code is not None:
        return code
    config = resolve_config(args.peft_config, args)
    return run_training(finetune_peft, config, args.dry_run, f"finetune {method_of(config)}", config.model)
