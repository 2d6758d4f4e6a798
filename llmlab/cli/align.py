"""`llmlab align dpo | ppo`: improve a model with preference pairs (DPO) or against a reward (PPO).

dpo   pairs.jsonl -> RUN/     DPO (or IPO, rDPO, SLiC hinge) with a LoRA policy; the reference is the base
                              model with the adapters disabled, its log-probs computed once per pair
ppo   prompts.jsonl -> RUN/   rollouts with the decoding engine, a reward model or a scripted reward,
                              KL penalty to the reference, value head, GAE, clipped losses
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from llmlab.cli.output import console


def register(subparsers: Any) -> None:
    from llmlab.cli.args import add_config_arguments
    from llmlab.cli.train_output import add_training_arguments
    from llmlab.rlhf.dpo_train import DPOConfig
    from llmlab.rlhf.ppo_train import PPOConfig

    group = subparsers.add_parser(
        "align",
        help="align a model with human preferences: DPO on pairs, PPO against a reward",
        description="Improve a model with preference pairs (`dpo`) or against a reward model or scripted "
        "reward (`ppo`). Both train a LoRA adapter by default; the reference model is the base with the "
        "adapters disabled, so no second copy of the weights is held.",
    )
    sub = group.add_subparsers(dest="align_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _: group.print_help())
    dpo = sub.add_parser(
        "dpo",
        help="direct preference optimisation on preference pairs",
        description="DPO: raise the policy's log-prob of each chosen completion over the rejected one, "
        "relative to the reference, with -log sigma(beta * difference of log-ratios) (--loss: sigmoid, ipo, "
        "robust, hinge). Reports held-out reward accuracy and log-prob margin before and after. The adapter "
        "at the top of --out runs with `llmlab generate --model MODEL --adapter OUT`.",
    )
    add_training_arguments(dpo, DPOConfig)
    dpo.set_defaults(func=run_dpo)
    ppo = sub.add_parser(
        "ppo",
        help="PPO against a reward model or a scripted reward",
        description="PPO: sample completions of the prompts with the decoding engine, score them (--reward: a "
        "`llmlab reward train` folder, contains:WORD, shorter:N or python:MODULE:FUNCTION), penalise the KL to "
        "the reference, and update the policy and a value head with the clipped losses. Logs mean reward, KL, "
        "entropy and clip fraction per step to metrics.jsonl with reward.png and kl.png; compares the "
        "held-out prompts' mean reward before and after.",
    )
    # The loop's settings that PPO does not use: a phase is an epoch, and there is no validation loss.
    add_config_arguments(ppo, PPOConfig, skip=("epochs", "seq_len", "eval_every", "patience", "memory_check"))
    ppo.add_argument("--config", metavar="FILE.yaml", help="settings from a YAML file (flags override)")
    ppo.set_defaults(func=run_ppo)


def _done(result: Any, seconds: float) -> None:
    console.print(
        f"trained {result.steps} steps in {seconds:.1f} s ({result.stopped.replace('_', ' ')})", markup=False
    )
    if result.skipped_steps:
        console.print(f"skipped steps (NaN/inf loss, gradient, or no completion to learn): "
                      f"{result.skipped_steps}", markup=False)  # fmt: skip


def run_dpo(args: argparse.Namespace) -> int:
    from llmlab.cli.reward import run_with_progress
    from llmlab.cli.train_output import print_preview, relaunch, resolve_config
    from llmlab.rlhf.dpo_train import DPOConfig, train_dpo

    code = relaunch(args)
    if code is not None:
        return code
    config = resolve_config(DPOConfig, args)
    if args.dry_run:
        preview, _ = train_dpo(config, dry_run=True)
        print_preview(preview, config)
        return 0
    started = time.perf_counter()
    preview, result = run_with_progress(train_dpo, config, "align dpo")
    _done(result, time.perf_counter() - started)
    first, last = result.first_eval, result.last_eval
    if first and last:
        console.print(
            f"held-out pairs ({preview.stats['val_pairs']}): reward accuracy {last['val_reward_accuracy']:.3f}"
            f", log-prob margin {last['val_logp_margin']:+.2f} (before {first['val_logp_margin']:+.2f})",
            markup=False,
        )
    if result.final is not None:
        what = f"adapter: {config.out}" if config.lora else f"model: {config.out}"
        console.print(
            f"{what} (step {result.best_step or result.steps}); metrics.jsonl, loss.png", markup=False
        )
    return 0


def run_ppo(args: argparse.Namespace) -> int:
    from llmlab.cli.reward import run_with_progress
    from llmlab.cli.train_output import resolve_config
    from llmlab.rlhf.ppo_train import PPOConfig, train_ppo

    config = resolve_config(PPOConfig, args)
    started = time.perf_counter()
    outcome = run_with_progress(train_ppo, config, "align ppo")
    _done(outcome.train, time.perf_counter() - started)
    records = _step_records(config.out)
    if records:
        first, last = records[0], records[-1]
        console.print(
            f"rollouts: mean reward {first['reward']:.3f} in the first phase, {last['reward']:.3f} in the last; "
            f"KL to the reference {last['kl']:.3f} nats (beta {last['kl_coef']:.3g})",
            markup=False,
        )
    if outcome.before and outcome.after:
        console.print(
            f"held-out prompts: mean reward {outcome.before['reward']:.3f} before, {outcome.after['reward']:.3f} "
            f"after ({config.eval_samples} sample{'s' if config.eval_samples > 1 else ''} per prompt)",
            markup=False,
        )
    what = f"adapter: {config.out}" if config.lora else f"model: {config.out}"
    console.print(f"{what}; metrics.jsonl, reward.png, kl.png, loss.png, eval.json", markup=False)
    return 0


def _step_records(run: str) -> list[dict[str, Any]]:
    from pathlib import Path

    from llmlab.training.metrics import MetricsLog

    records = MetricsLog(Path(run) / "metrics.jsonl").read()
    return [r for r in records if "reward" in r and math.isfinite(r["reward"])]
