"""PPO's experience: rollouts sampled from the current policy, scored, turned into advantages and served to the
training loop as micro-batches (a `BatchSource` whose data is made during training).

For rollout phase k (the loop's epoch k), with R = --rollout-batch:
  1. prompts: R of them, taken in order from seeded shuffles of the prompts (every prompt once per pass);
  2. sample one completion per prompt with llmlab's decoding engine, batched, pure sampling at --temperature
     (top-p 1), row i seeded with seed + k·R + i. The engine is built afresh for the phase, a fused copy of the
     current weights with the LoRA update merged in, or runs transformers' own forward on the live weights
     (--rollout-precision hf);
  3. score each (prompt, completion) with the reward, clipped to ±--reward-clip; a NaN or infinite score
     takes that completion out of the update (reported as `nonfinite`), the others go on;
  4. one no-grad forward of prompt + completion through the policy (old log-probs at the sampling temperature,
     under the training precision, and values) and through the reference, the same model with its adapters
     disabled (or a frozen copy with --no-lora);
  5. per-token rewards -beta·KL_t, plus the score on the last token (kl.py), optionally whitened; GAE
     returns and advantages, the advantages whitened (ppo.py); the KL controller sees the phase's mean KL;
then --ppo-epochs passes over the R rollouts in seeded random micro-batches of --batch-size.

Old log-probs are recomputed rather than taken from the engine: the engine samples from a fused copy (perhaps
bf16) and reports log-probs before temperature, while PPO's ratio pi / pi_old must be exactly 1 on the first
pass, so pi_old comes from the very forward the update uses.
Every micro-batch carries the phase's statistics (mean reward before clipping, KL, beta, length), which the
objective reports, so metrics.jsonl has them on every step. A checkpoint holds the phase's rollouts and the
KL controller (`RolloutState`): a run resumed in the middle of a phase trains on exactly the rollouts it had.
Tests: tests/rlhf/test_ppo_train.py (learning, resume equals the uninterrupted run, NaN rewards).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmlab.data.tokenize import encode_prompt
from llmlab.errors import ConfigError, DataError
from llmlab.rlhf.completions import render_prompt
from llmlab.rlhf.kl import clip_scores, kl_penalized_rewards
from llmlab.rlhf.policy import score_completions
from llmlab.rlhf.ppo import gae, whiten, whiten_rewards
from llmlab.rlhf.rewards import RewardFn
from llmlab.training.objective import Batch

ROLLOUT_FILE = "rollout.safetensors"
STATE_FILE = "ppo_state.json"
# Aligned with the tokens (B, T) or with the predictions of the next token (B, T-1).
TOKEN_KEYS = ("input_ids", "completion_mask")
STEP_KEYS = ("old_logprobs", "old_values", "advantages", "returns")


@dataclass
class Rollout:
    """One phase's experience: (R, T) and (R, T-1) tensors, and its statistics."""

    epoch: int
    tensors: dict[str, torch.Tensor]
    stats: dict[str, float]

    def batch(self, rows: torch.Tensor) -> Batch:
        """The given rows, cut to their longest sequence, with the phase's statistics as `stat_*` scalars."""
        width = int(self.tensors["length"][rows].max())
        batch: Batch = {k: self.tensors[k][rows, :width] for k in TOKEN_KEYS}
        batch |= {k: self.tensors[k][rows, : width - 1] for k in STEP_KEYS}
        batch |= {f"stat_{k}": torch.tensor(v) for k, v in self.stats.items()}
        batch["tokens"] = self.tensors["length"][rows].sum()
        return batch


def pad_right(sequences: Sequence[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s)
    return out


class RolloutSource:
    """Rollout phases from the live policy, as micro-batches for `Trainer` (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[str],
        reward: RewardFn,
        config: Any,
        controller: Any,
        reference: Any = None,
        autocast: torch.dtype | None = None,
    ):
        """`model` has `.policy` and `.value_head`; `reference` is a frozen model, or None for the policy with
        its adapters disabled; `config` is a PPOConfig (its sampling, batching and PPO settings)."""
        self.model, self.tokenizer, self.prompts = model, tokenizer, list(prompts)
        self.reward, self.config, self.controller = reward, config, controller
        self.reference, self.autocast = reference, autocast
        self.per_pass = -(-config.rollout_batch // config.batch_size)
        self.cached: Rollout | None = None
        self.engine: Any = None
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.prompt_ids = [
            encode_prompt(tokenizer, render_prompt(tokenizer, p, config.chat)) for p in self.prompts
        ]

    def __len__(self) -> int:
        return int(self.config.ppo_epochs * self.per_pass)

    # ---- the phases ------------------------------------------------------------------------------------

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        if start and (self.cached is None or self.cached.epoch != epoch):
            raise ConfigError(
                f"cannot resume inside rollout phase {epoch}: the checkpoint does not hold its rollouts"
            )
        rollout = self.cached if start else self.collect(epoch)
        assert rollout is not None
        self.cached = rollout
        size = self.config.batch_size
        for index in range(start, len(self)):
            ppo_epoch, b = divmod(index, self.per_pass)
            order = torch.randperm(self.config.rollout_batch, generator=self._generator(epoch, ppo_epoch + 1))
            yield rollout.batch(order[b * size : (b + 1) * size])

    def _generator(self, epoch: int, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch * 1009 + salt)

    def prompt_indices(self, epoch: int) -> list[int]:
        """The R prompts of phase `epoch`: consecutive positions in pass after pass of seeded shuffles."""
        R, n = self.config.rollout_batch, len(self.prompts)
        out, orders = [], {}
        for i in range(epoch * R, (epoch + 1) * R):
            p, j = divmod(i, n)
            if p not in orders:
                orders[p] = torch.randperm(n, generator=self._generator(p, 0)).tolist()
            out.append(orders[p][j])
        return out

    def sample(self, prompt_ids: list[list[int]], epoch: int) -> list[Any]:
        from llmlab.generation import Engine
        from llmlab.generation.config import GenerationConfig

        precision = self.config.rollout_precision
        if self.engine is None or precision != "hf":  # a fused engine holds a copy of the weights of its time
            self.engine = Engine(self.model.policy, self.tokenizer, precision=precision)
        settings = GenerationConfig(
            max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature, top_p=1.0,
            seed=self.config.seed + epoch * len(prompt_ids),
        )  # fmt: skip
        was_training = self.model.training
        self.model.eval()
        try:
            return self.engine.generate(prompt_ids, settings)
        finally:
            self.model.train(was_training)
            if precision != "hf":
                self.engine = None  # free the copy until the next phase

    def collect(self, epoch: int) -> Rollout:
        """Sample, score and compute advantages for phase `epoch` (steps 1-5 of the module docstring)."""
        config = self.config
        indices = self.prompt_indices(epoch)
        prompts = [self.prompts[i] for i in indices]
        completions = self.sample([self.prompt_ids[i] for i in indices], epoch)
        raw = torch.tensor(self._scores(prompts, [c.text for c in completions]), dtype=torch.float32)
        finite = torch.isfinite(raw)  # (R,)
        scores = clip_scores(torch.where(finite, raw, torch.zeros_like(raw)), config.reward_clip)
        sequences = [self.prompt_ids[i] + c.token_ids for i, c in zip(indices, completions, strict=True)]
        input_ids = pad_right(sequences, self.pad_id)  # (R, T)
        completion_mask = torch.zeros_like(input_ids, dtype=torch.bool)
        for r, (i, c) in enumerate(zip(indices, completions, strict=True)):
            start = len(self.prompt_ids[i])
            completion_mask[r, start : start + len(c.token_ids)] = True
        logprobs, values, ref_logprobs = self._forward(input_ids, completion_mask)
        mask = completion_mask[:, 1:]  # (R, T-1)
        # kl_penalized_rewards puts the score on column `length - 1`, the last token of a response-only row;
        # here rows are prompt + response, so the score is added on each row's last completion token instead.
        rewards, kl = kl_penalized_rewards(
            torch.zeros_like(scores), logprobs, ref_logprobs, mask, self.controller.value, config.kl_estimator
        )
        last = mask.shape[1] - 1 - mask.flip(1).int().argmax(dim=1)  # (R,)
        rewards[torch.arange(len(scores)), last] += scores
        train = mask & finite[:, None]
        if config.whiten_rewards and int(train.sum()) >= 2:
            rewards = whiten_rewards(rewards, train)
        advantages, returns = gae(rewards, values, train, config.gamma, config.lam)
        if int(train.sum()) >= 2:
            advantages = whiten(advantages, train).masked_fill(~train, 0.0)
        sequence_kl = kl.sum(dim=1)[finite]
        stats = {
            "reward": float(raw[finite].mean()) if bool(finite.any()) else float("nan"),
            "kl": float(sequence_kl.mean()) if bool(finite.any()) else float("nan"),
            "kl_coef": float(self.controller.value),
            "length": float(mask.sum(dim=1).float().mean()),
            "nonfinite": float((~finite).sum()),
        }
        if bool(finite.any()):
            self.controller.update(stats["kl"], config.rollout_batch)
        tensors = {
            "input_ids": input_ids, "completion_mask": completion_mask & finite[:, None],
            "old_logprobs": logprobs, "old_values": values, "advantages": advantages, "returns": returns,
            "length": torch.tensor([len(s) for s in sequences]),
        }  # fmt: skip
        return Rollout(epoch, tensors, stats)

    def _scores(self, prompts: list[str], texts: list[str]) -> list[float]:
        scores = list(self.reward(prompts, texts))
        if len(scores) != len(texts):
            raise DataError(f"the reward returned {len(scores)} scores for {len(texts)} completions")
        return [float(s) for s in scores]

    @torch.no_grad()
    def _forward(
        self, input_ids: torch.Tensor, completion_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Old log-probs, values and reference log-probs, (R, T-1) each, in chunks of --batch-size rows."""
        from llmlab.peft.registry import disable_adapters

        device = next(self.model.parameters()).device
        policy, temperature = self.model.policy, self.config.temperature
        was_training = self.model.training
        self.model.eval()
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for start in range(0, input_ids.shape[0], self.config.batch_size):
            ids = input_ids[start : start + self.config.batch_size].to(device)
            mask = completion_mask[start : start + self.config.batch_size].to(device)
            with self._autocast(device):
                own = score_completions(policy, ids, mask, temperature, value_head=self.model.value_head)
                if self.reference is None:
                    with disable_adapters(policy):
                        ref = score_completions(policy, ids, mask, temperature)
                else:
                    ref = score_completions(self.reference, ids, mask, temperature)
            assert own.values is not None
            parts.append((own.logprobs.cpu(), own.values.cpu(), ref.logprobs.cpu()))
        self.model.train(was_training)
        logprobs, values, ref_logprobs = (torch.cat(p) for p in zip(*parts, strict=True))
        return logprobs, values.masked_fill(~completion_mask[:, 1:], 0.0), ref_logprobs

    def _autocast(self, device: torch.device) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)


class RolloutState:
    """The checkpoint part of PPO besides the weights: the current phase's rollouts and the KL controller."""

    def __init__(self, source: RolloutSource):
        self.source = source

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        state = {"kl_controller": self.source.controller.state_dict()}
        rollout = self.source.cached
        if rollout is not None:
            meta = {"epoch": str(rollout.epoch), "stats": json.dumps(rollout.stats)}
            save_file({k: v.contiguous() for k, v in rollout.tensors.items()}, folder / ROLLOUT_FILE, meta)
        (folder / STATE_FILE).write_text(json.dumps(state) + "\n", encoding="utf-8")

    def load(self, folder: Path) -> None:
        from safetensors import safe_open

        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        self.source.controller.load_state_dict(state["kl_controller"])
        path = folder / ROLLOUT_FILE
        if path.is_file():
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            self.source.cached = Rollout(int(meta["epoch"]), tensors, json.loads(meta["stats"]))
