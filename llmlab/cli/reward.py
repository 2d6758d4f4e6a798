"""`llmlab reward train | score`: a reward model from preference pairs, and scores from it.

train   pairs.jsonl -> RUN/   a scalar head on a decoder or encoder (LoRA optional), pairwise loss;
                              held-out pairwise accuracy before and after training
score   RUN --text T          the reward of a text (after --prompt), or the accuracy on a pairs file
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from llmlab.cli.output import console, err_console


def register(subparsers: Any) -> None:
    from llmlab.cli.train_output import add_training_arguments
    from llmlab.rlhf.reward_train import RewardConfig

    group = subparsers.add_parser(
        "reward",
        help="reward models: train one on preference pairs, score texts with it",
        description="Train a reward model on preference pairs (`train`) and score texts with it (`score`).",
    )
    sub = group.add_subparsers(dest="reward_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _: group.print_help())
    train = sub.add_parser(
        "train",
        help="train a reward model on preference pairs (pairwise loss)",
        description="Train a reward model: a scalar head on a decoder (scored at the last token) or an encoder "
        "(mean of the tokens), every weight or LoRA (--lora), with the pairwise loss "
        "-log sigma(r_chosen - r_rejected). Reports the held-out pairwise accuracy before and after training. "
        "Writes checkpoints, metrics.jsonl, loss.png and config.yaml to --out; the reward model at the top of "
        "--out is what `llmlab reward score OUT` and `llmlab align ppo --reward OUT` load.",
    )
    add_training_arguments(train, RewardConfig)
    train.set_defaults(func=run_train)
    score = sub.add_parser(
        "score",
        help="score texts with a reward model (or measure its accuracy on pairs)",
        description="Print the reward of each --text (a completion, after --prompt when given), higher is "
        "better; or, with --pairs, the share of pairs whose chosen completion scores higher.",
    )
    score.add_argument("model", metavar="RUN", help="the --out folder of `llmlab reward train`")
    score.add_argument("--text", action="append", default=[], help="a completion to score (repeatable)")
    score.add_argument("--prompt", default="", help="the prompt the completions answer (default: none)")
    score.add_argument(
        "--pairs", metavar="FILE.jsonl", help="measure pairwise accuracy on these pairs instead"
    )
    score.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    score.set_defaults(func=run_score)


def run_train(args: argparse.Namespace) -> int:
    from llmlab.cli.train_output import print_preview, relaunch, resolve_config
    from llmlab.rlhf.reward_train import RewardConfig, train_reward

    code = relaunch(args)
    if code is not None:
        return code
    config = resolve_config(RewardConfig, args)
    if args.dry_run:
        preview, _ = train_reward(config, dry_run=True)
        print_preview(preview, config)
        return 0
    started = time.perf_counter()
    preview, result = run_with_progress(train_reward, config, "reward train")
    assert result is not None
    console.print(
        f"trained {result.steps} steps in {time.perf_counter() - started:.1f} s "
        f"({result.stopped.replace('_', ' ')})",
        markup=False,
    )
    if result.skipped_steps:
        console.print(f"skipped steps (NaN/inf loss or gradient): {result.skipped_steps}", markup=False)
    first, last, pairs = result.first_eval, result.last_eval, preview.stats["val_pairs"]
    if last and first:
        console.print(
            f"held-out pairwise accuracy {last['val_accuracy']:.3f} (untrained {first['val_accuracy']:.3f}) "
            f"on {pairs} pairs",
            markup=False,
        )
    if result.final is not None:
        step = result.best_step or result.steps
        console.print(f"reward model: {config.out} (step {step}); metrics.jsonl, loss.png", markup=False)
    return 0


def run_with_progress(recipe: Any, config: Any, verb: str, **kwargs: Any) -> Any:
    """Run a training recipe with the progress bar on standard error (validation lines above it)."""
    from llmlab.cli.train_output import ProgressBar, print_preview

    bar = ProgressBar()
    last: dict[str, Any] = {}

    def on_event(event: Any) -> None:
        if event.kind == "preview":
            print_preview(event.data["preview"], config, examples=False)
        elif event.kind == "eval":
            shown = {k[4:]: v for k, v in event.data.items() if k.startswith("val_")}
            line = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in shown.items())
            bar.progress.console.print(f"step {event.step}: held-out {line}", highlight=False)
        elif event.kind == "checkpoint" and "kl" in last:  # PPO: one line per rollout phase
            bar.progress.console.print(
                f"step {event.step}: rollouts' mean reward {last['reward']:.3f}, KL {last['kl']:.3f}, "
                f"clip fraction {last['clip_fraction']:.3f}, entropy {last['entropy']:.2f}",
                highlight=False,
            )
        else:
            if event.kind == "step":
                last.clear()
                last.update(event.data)
            bar(event)

    try:
        return recipe(config, on_event=on_event, **kwargs)
    except KeyboardInterrupt:
        bar.stop()
        err_console.print(f"interrupted; continue with: llmlab {verb} --resume {config.out}")
        raise
    finally:
        if bar.task is not None:  # a bar never started would still print an empty line
            bar.stop()


def run_score(args: argparse.Namespace) -> int:
    from llmlab.errors import ConfigError
    from llmlab.models.loading import resolve_device
    from llmlab.rlhf.reward import pairwise_accuracy
    from llmlab.rlhf.reward_model import load_reward_model

    if not args.text and not args.pairs:
        raise ConfigError("give --text TEXT (repeatable) to score, or --pairs FILE.jsonl to measure accuracy")
    scorer = load_reward_model(args.model, device=resolve_device(args.device))
    if args.pairs:
        import torch

        from llmlab.rlhf.records import read_pairs

        pairs = read_pairs(args.pairs)
        chosen = scorer.score([p.prompt for p in pairs], [p.chosen for p in pairs])
        rejected = scorer.score([p.prompt for p in pairs], [p.rejected for p in pairs])
        accuracy = pairwise_accuracy(torch.tensor(chosen), torch.tensor(rejected))
        console.print(f"pairwise accuracy {accuracy:.3f} on {len(pairs)} pairs ({args.pairs})", markup=False)
    for text, value in zip(args.text, scorer.score([args.prompt] * len(args.text), args.text), strict=True):
        console.print(f"{value:+.3f}  {text}", markup=False)
    return 0
