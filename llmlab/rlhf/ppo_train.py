"""`llmlab align ppo`: proximal policy optimisation of a causal LM against a reward, on the shared loop.

RLHF's PPO (Ziegler et al., 2019, arXiv:1909.08593; InstructGPT, Ouyang et al., 2022, arXiv:2203.02155):
maximise E[r(x, y)] - beta KL(pi || ref) over completions y ~ pi(.|x). Each rollout phase (rollouts.py) samples
--rollout-batch completions with the decoding engine, scores them, and computes per-token KL-penalised rewards,
values and GAE advantages; the loop then runs --ppo-epochs passes over them with `PPOObjective`:

    L = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps))                 (clipped policy loss)
      + vf_coef * 0.5 mean_t max((V_t - R_t)^2, (clip(V_t, V_old ± c) - R_t)^2)     (clipped value loss)
      - entropy_coef * mean_t H_t                                                   (0 by default)

(maths in ppo.py and kl.py, each equal to trl's published code). The policy is LoRA by default and the
reference is the same model with its adapters disabled, so no second copy of the weights exists; --no-lora
trains every weight and keeps a frozen copy as the reference. The value head is a linear layer on the policy's
last hidden states (policy.py). Held-out prompts (--val, or --val-fraction of --prompts) are completed
--eval-samples times before training and after, with the same seeds, and their mean reward compared.

The run folder: metrics.jsonl (per step: reward, kl, kl_coef, entropy, clip_fraction, approx_kl, policy and
value losses, response length), reward.png, kl.png and loss.png, eval.json (held-out reward before/after),
checkpoints (adapter, value head, the phase's rollouts and the KL controller: --resume continues exactly), and
at its top the final adapter (`llmlab generate --adapter RUN`).
Tests: tests/rlhf/test_ppo_train.py; slow: tests/rlhf/test_align_slow.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError
from llmlab.rlhf.kl import KL_CONTROLLERS, KL_ESTIMATORS, AdaptiveKLController, FixedKLController
from llmlab.rlhf.policy import ValueHead, hidden_size, score_completions
from llmlab.rlhf.ppo import clipped_policy_loss, clipped_value_loss
from llmlab.rlhf.recipe import LoraSettings, add_lora, check_val_fraction, decoder_files, resume_from
from llmlab.rlhf.rewards import RewardFn, check_reward
from llmlab.training.checkpoint import atomic_write_text
from llmlab.training.config import TrainConfig
from llmlab.training.loop import Event, Trainer, TrainResult, resolve_precision
from llmlab.training.objective import Batch, LossOutput
from llmlab.training.run import prepare_out, require_out, seed_everything

EVAL_FILE = "eval.json"
VALUE_HEAD = "value_head.safetensors"
PLOTS = {"reward": ("reward.png", "mean reward of the phase's rollouts"), "kl": ("kl.png", "KL(pi || ref), nats per completion")}  # fmt: skip


@dataclass
class PPOSettings:
    """PPO's own settings (mixed into `PPOConfig`)."""

    ppo_epochs: int = 2
    """Passes over each rollout phase's completions."""
    clip_range: float = 0.2
    """eps of the clipped policy loss: the ratio pi / pi_old counts only within [1 - eps, 1 + eps]."""
    clip_range_value: float = 0.2
    """The value head's estimates move at most this far from their rollout-time values per phase."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (0: none)."""
    gamma: float = 1.0
    """Discount of GAE (1: none, the usual for text)."""
    lam: float = 0.95
    """lambda of GAE."""
    kl_coef: float = 0.05
    """beta, the weight of the KL penalty (the initial one with --kl-control adaptive)."""
    kl_control: str = "fixed"
    """fixed beta, or adaptive: beta moves to keep the KL near --kl-target."""
    kl_target: float = 6.0
    """The KL (nats per completion) the adaptive controller aims at."""
    kl_horizon: int = 10000
    """How many completions the adaptive controller takes to move beta."""
    kl_estimator: str = "k1"
    """Per-token KL estimator: k1 (log ratio), k2, k3 or abs."""
    reward_clip: float = 10.0
    """Scores are clipped to [-reward_clip, reward_clip] before the KL penalty."""
    whiten_rewards: bool = False
    """Scale the per-token rewards of a phase to unit variance (mean kept)."""


@dataclass
class PPOConfig(LoraSettings, PPOSettings, TrainConfig):
    """PPO against a reward model or a scripted reward."""

    policy: str = ""
    """The model to improve: a packaged model name, a Hugging Face checkpoint folder or a .gguf file."""
    reward: str = ""
    """A reward model folder (`llmlab reward train`), contains:WORD, shorter:N or python:MODULE:FUNCTION."""
    prompts: str = ""
    """Prompts, JSONL: {"prompt": ...} a line."""
    val: str = ""
    """Held-out prompts for the before/after reward (default: --val-fraction of --prompts)."""
    val_fraction: float = 0.1
    """Share of --prompts held out when --val is not given (0: no held-out evaluation)."""
    iterations: int = 20
    """Rollout phases: each samples --rollout-batch completions, then trains on them."""
    rollout_batch: int = 16
    """Completions sampled per phase (one per prompt)."""
    max_new_tokens: int = 48
    """Longest completion in tokens."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (pure sampling: no top-p or top-k)."""
    rollout_precision: str = "fp32"
    """Weights the rollouts are sampled with: fp32 or bf16 (a fused copy made for each phase), or hf
    (transformers' forward on the live weights)."""
    eval_samples: int = 2
    """Completions per held-out prompt, before and after training."""
    chat: bool = True
    """Render each prompt through the model's chat template (--no-chat: as is)."""
    lr: float = 1e-4
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for flag, value in (
            ("--policy", self.policy),
            ("--reward", self.reward),
            ("--prompts", self.prompts),
        ):
            if not value:
                raise ConfigError(f"{flag} is required: see `llmlab align ppo --help`")
        check_val_fraction(self.val_fraction)
        for name in ("iterations", "rollout_batch", "max_new_tokens", "ppo_epochs", "eval_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.rollout_batch < 2:
            raise ConfigError(
                f"--rollout-batch must be at least 2 (advantages are whitened), got {self.rollout_batch}"
            )
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be > 0 (PPO samples), got {self.temperature}")
        choices = {"rollout_precision": ("fp32", "bf16", "hf"), "kl_control": tuple(KL_CONTROLLERS),
                   "kl_estimator": tuple(KL_ESTIMATORS)}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        make_controller(self)  # validates the KL settings
        check_reward(self.reward)

    def loop_config(self, steps_per_phase: int) -> PPOConfig:
        """The loop's view: one epoch per rollout phase, a checkpoint after each phase unless --save-every."""
        return dataclasses.replace(
            self, epochs=self.iterations, save_every=self.save_every or steps_per_phase
        )


def make_controller(config: PPOConfig) -> FixedKLController | AdaptiveKLController:
    if config.kl_control == "adaptive":
        return AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
    return FixedKLController(config.kl_coef)


class PolicyWithValue(nn.Module):
    """The policy and its value head, trained together (the loop's model)."""

    def __init__(self, policy: nn.Module, value_head: ValueHead):
        super().__init__()
        self.policy, self.value_head = policy, value_head


class PPOObjective:
    """The clipped policy and value losses summed over a micro-batch's completion tokens."""

    perplexity = False

    def __init__(self, config: PPOConfig):
        self.config = config

    def units(self, batch: Batch) -> int:
        return int(batch["completion_mask"][:, 1:].sum())

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"])

    def loss(self, model: Any, batch: Batch) -> LossOutput:
        c, n = self.config, self.units(batch)
        if n == 0:  # every completion of the micro-batch had a non-finite reward: the loop skips the step
            return LossOutput(torch.zeros((), requires_grad=True))
        scores = score_completions(
            model.policy, batch["input_ids"], batch["completion_mask"], c.temperature,
            entropy=True, value_head=model.value_head,
        )  # fmt: skip
        assert scores.values is not None and scores.entropy is not None
        mask = scores.mask
        policy = clipped_policy_loss(
            scores.logprobs, batch["old_logprobs"], batch["advantages"], mask, c.clip_range
        )
        value = clipped_value_loss(
            scores.values, batch["old_values"], batch["returns"], mask, c.clip_range_value
        )
        entropy = scores.entropy.sum() / n
        loss = policy.loss + c.vf_coef * value.loss - c.entropy_coef * entropy
        metrics = {
            "policy_loss": float(policy.loss.detach()), "value_loss": float(value.loss.detach()),
            "clip_fraction": float(policy.clip_fraction), "value_clip_fraction": float(value.clip_fraction),
            "approx_kl": float(policy.approx_kl), "entropy": float(entropy.detach()),
        }  # fmt: skip
        metrics |= {k.removeprefix("stat_"): float(v) for k, v in batch.items() if k.startswith("stat_")}
        return LossOutput(loss * n, {k: v * n for k, v in metrics.items()})


class PPOSaver:
    """A checkpoint's model part: the adapter (or the whole policy), the value head, the rollouts, beta."""

    def __init__(
        self, model: PolicyWithValue, names: Sequence[str], tokenizer: Any, config: PPOConfig, state: Any
    ):
        from llmlab.rlhf.recipe import AdapterSaver
        from llmlab.training.checkpoint import FullModelSaver

        self.model, self.state, self.lora = model, state, config.lora
        self.adapter = (
            AdapterSaver(model.policy, model, names, tokenizer, config.policy) if config.lora else None
        )
        self.full = None if config.lora else FullModelSaver(model.policy, tokenizer)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        if self.adapter is not None:
            self.adapter.save(folder)
        elif self.full is not None:
            self.full.save(folder)
            save_file(
                {k: v.contiguous() for k, v in self.model.value_head.state_dict().items()},
                folder / VALUE_HEAD,
            )
        self.state.save(folder)

    def load(self, folder: Path) -> None:
        from safetensors.torch import load_file

        if self.adapter is not None:
            self.adapter.load(folder)
        elif self.full is not None:
            self.full.load(folder)
            self.model.value_head.load_state_dict(load_file(folder / VALUE_HEAD))
        self.state.load(folder)


@torch.no_grad()
def held_out_reward(
    model: PolicyWithValue, tokenizer: Any, prompts: Sequence[str], reward: RewardFn, config: PPOConfig
) -> dict[str, float]:
    """Mean reward (and share of positive rewards) of --eval-samples seeded completions per held-out prompt."""
    from llmlab.data.tokenize import encode_prompt
    from llmlab.generation import Engine
    from llmlab.generation.config import GenerationConfig
    from llmlab.rlhf.completions import render_prompt

    ids = [encode_prompt(tokenizer, render_prompt(tokenizer, p, config.chat)) for p in prompts]
    settings = GenerationConfig(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=1.0,
        seed=config.seed + 10**6,
    )
    was_training = model.training
    model.eval()
    outs = Engine(model.policy, tokenizer, precision=config.rollout_precision).generate(
        ids * config.eval_samples, settings
    )
    model.train(was_training)
    scores = torch.tensor(
        reward(list(prompts) * config.eval_samples, [o.text for o in outs]), dtype=torch.float32
    )
    scores = scores[torch.isfinite(scores)]
    return {"reward": float(scores.mean()), "positive": float((scores > 0).float().mean()),
            "length": sum(len(o.token_ids) for o in outs) / len(outs)}  # fmt: skip


def plot_metrics(run: Path) -> None:
    """reward.png and kl.png from metrics.jsonl (one point per optimizer step)."""
    import io
    import math

    import matplotlib

    from llmlab.training.checkpoint import atomic_write_bytes
    from llmlab.training.metrics import MetricsLog

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = MetricsLog(run / "metrics.jsonl").read()
    for key, (name, label) in PLOTS.items():
        points = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if points:
            ax.plot(
                *zip(*points, strict=True),
                "o-",
                markersize=3,
                color="tab:green" if key == "reward" else "tab:red",
            )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.set_title(f"{run.name}: {key}")
        ax.grid(alpha=0.3)
        fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.13)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        atomic_write_bytes(run / name, buffer.getvalue())


def split_prompts(config: PPOConfig) -> tuple[list[str], list[str]]:
    from llmlab.data.packing import split_by_seed
    from llmlab.rlhf.records import read_prompts

    prompts = read_prompts(config.prompts)
    if config.val:
        return prompts, read_prompts(config.val)
    return split_by_seed(prompts, config.val_fraction, config.seed)


@dataclass
class PPOResult:
    train: TrainResult
    before: dict[str, float] | None
    after: dict[str, float] | None
    reward: str
    """What the reward was (its description)."""


def train_ppo(
    config: PPOConfig, on_event: Callable[[Event], None] | None = None, reward_fn: RewardFn | None = None
) -> PPOResult:
    """Run PPO; `reward_fn` replaces --reward (for callers with a reward in hand)."""
    import copy

    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from llmlab.models.loading import resolve_device
    from llmlab.rlhf.rewards import make_reward
    from llmlab.rlhf.rollouts import RolloutSource, RolloutState

    hf_logging.disable_progress_bar()
    require_out(config, False)
    resume = resume_from(config)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    folder, tokenizer, hf_config, _ = decoder_files(config.policy, "--policy")
    train_prompts, val_prompts = split_prompts(config)
    reward, description = (
        (reward_fn, "a Python function") if reward_fn else make_reward(config.reward, device)
    )
    run = prepare_out(config, resume)
    policy: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    policy.to(device)
    reference = None
    if config.lora:
        add_lora(policy, config)
    else:
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
    torch.manual_seed(config.seed)
    model = PolicyWithValue(policy, ValueHead(hidden_size(hf_config))).to(device)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    autocast = resolve_precision(config.precision, torch.device(device))
    source = RolloutSource(
        model, tokenizer, train_prompts, reward, config, make_controller(config), reference, autocast
    )
    saver = PPOSaver(model, list(trainable), tokenizer, config, RolloutState(source))
    evaluation = run / EVAL_FILE
    before = json.loads(evaluation.read_text())["before"] if resume and evaluation.is_file() else None
    if before is None and val_prompts:
        before = held_out_reward(model, tokenizer, val_prompts, reward, config)
        atomic_write_text(evaluation, json.dumps({"before": before, "reward": description}) + "\n")

    def report(event: Event) -> None:
        if event.kind == "checkpoint":
            plot_metrics(run)
        if on_event:
            on_event(event)

    loop = config.loop_config(-(-len(source) // config.grad_accum))
    trainer = Trainer(
        model, PPOObjective(config), source, loop, trainable=trainable, saver=saver, on_event=report
    )
    result = trainer.fit(resume=resume)
    plot_metrics(run)
    after = held_out_reward(model, tokenizer, val_prompts, reward, config) if val_prompts else None
    if after is not None:
        atomic_write_text(
            evaluation, json.dumps({"before": before, "after": after, "reward": description}) + "\n"
        )
    return PPOResult(result, before, after, description)
