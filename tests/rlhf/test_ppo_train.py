"""PPO on the shared loop (llmlab/rlhf/ppo_train.py, rollouts.py): learning under a KL bound, exact resume,
non-finite rewards, the files of a run, the CLI.

Learning: a tiny random decoder whose samples contain the word "two" about 6% of the time is rewarded with
`contains:two` (1 or 0). After 8 rollout phases of 32 completions its held-out prompts' samples (the same
seeds before and after) contain "two" at least 35% of the time, while the KL to the reference (nats per
completion, k1) stays below 8 in every phase.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from synthetic_prefs import prompts, write_jsonl

from llmlab.cli import main
from llmlab.rlhf.ppo_train import PPOConfig, train_ppo

KL_BOUND = 8.0


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prompts")
    return write_jsonl(folder / "prompts.jsonl", [{"prompt": p} for p in prompts(48, seed=5)])


def _config(folder: Path, prompt_file: Path, out: Path, **changes) -> PPOConfig:
    settings = dict(
        policy=str(folder), reward="contains:two", prompts=str(prompt_file), out=str(out), lr=1e-2,
        iterations=8, rollout_batch=32, batch_size=16, max_new_tokens=12, targets="all-linear",
        val_fraction=0.25, eval_samples=4, precision="fp32",
    )  # fmt: skip
    return PPOConfig(**(settings | changes))


def _steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_ppo_raises_the_reward_within_a_kl_bound(
    tiny_folder: Path, prompt_file: Path, tmp_path: Path
) -> None:
    result = train_ppo(_config(tiny_folder, prompt_file, tmp_path / "ppo"))
    assert result.before is not None and result.after is not None
    assert result.before["reward"] <= 0.15 and result.after["reward"] >= 0.35, (result.before, result.after)
    records = [r for r in _steps(tmp_path / "ppo") if "reward" in r]
    assert len(records) == result.train.steps == 32 and result.train.skipped_steps == 0
    assert max(r["kl"] for r in records) < KL_BOUND
    phases = [r["reward"] for r in records[::4]]  # 4 optimizer steps per phase
    assert sum(phases[-3:]) / 3 > sum(phases[:3]) / 3
    first = records[0]  # old log-probs come from the update's own forward: the first ratio is exactly 1
    assert first["approx_kl"] == 0 and first["clip_fraction"] == 0 and first["kl"] == 0
    for key in ("entropy", "value_loss", "policy_loss", "kl_coef", "length"):
        assert math.isfinite(first[key])
    for name in ("reward.png", "kl.png", "loss.png", "adapter_config.json", "eval.json"):
        assert (tmp_path / "ppo" / name).is_file()


def test_resume_equals_the_uninterrupted_run(tiny_folder: Path, prompt_file: Path, tmp_path: Path) -> None:
    """Stopped after 3 steps (inside the second rollout phase) and resumed to 4, the adapter and value head
    equal those of a run of 4 steps bit for bit (constant learning rate, adaptive KL controller): the
    checkpoint holds the phase's rollouts and beta."""
    from safetensors.torch import load_file

    common = dict(iterations=2, rollout_batch=8, batch_size=4, ppo_epochs=1, lr=3e-3, warmup_ratio=0.0,
                  min_lr_ratio=1.0, val_fraction=0.0, kl_control="adaptive", kl_target=0.01, kl_horizon=20)  # fmt: skip
    train_ppo(_config(tiny_folder, prompt_file, tmp_path / "straight", max_steps=4, **common))
    train_ppo(_config(tiny_folder, prompt_file, tmp_path / "resumed", max_steps=3, **common))
    resumed = _config(
        tiny_folder,
        prompt_file,
        tmp_path / "resumed",
        resume=str(tmp_path / "resumed"),
        max_steps=4,
        **common,
    )
    assert train_ppo(resumed).train.steps == 4
    a, b = (load_file(tmp_path / run / "trainable.safetensors") for run in ("straight", "resumed"))
    assert a.keys() == b.keys() and any("value_head" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    straight, again = _steps(tmp_path / "straight"), _steps(tmp_path / "resumed")
    assert [r["kl_coef"] for r in straight] == [r["kl_coef"] for r in again]
    assert straight[-1]["kl_coef"] != straight[0]["kl_coef"]  # beta did adapt


def test_non_finite_rewards_are_left_out_and_reported(
    tiny_folder: Path, prompt_file: Path, tmp_path: Path
) -> None:
    """A NaN or infinite score takes its completion out of the update (counted as `nonfinite`); when every
    completion of a step has one, the step is skipped and reported. --no-lora keeps a frozen copy as the
    reference."""
    calls = []

    def flaky(prompts: list[str], completions: list[str]) -> list[float]:
        calls.append(len(completions))
        if len(calls) == 1:  # the first phase: every score is NaN
            return [math.nan] * len(completions)
        return [math.inf if i % 4 == 0 else 1.0 for i in range(len(completions))]

    config = _config(tiny_folder, prompt_file, tmp_path / "nan", iterations=2, rollout_batch=8, batch_size=8,
                     ppo_epochs=1, val_fraction=0.0, lora=False, lr=1e-4)  # fmt: skip
    result = train_ppo(config, reward_fn=flaky)
    assert result.train.steps == 2 and result.train.skipped_steps == 1
    records = _steps(tmp_path / "nan")
    assert records[0] == {"step": 1, "skipped": "no target in the step's micro-batches"}
    assert records[1]["nonfinite"] == 2 and records[1]["reward"] == 1.0
    assert (tmp_path / "nan" / "model.safetensors").is_file()  # --no-lora saves the whole policy


def test_cli_errors_name_the_file_and_line(tiny_folder: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "Hello"}\n{"prompt": ""}\n')
    base = ["align", "ppo", "--policy", str(tiny_folder), "--prompts", str(bad), "--out", str(tmp_path / "o")]
    assert main([*base, "--reward", "contains:two"]) == 2
    assert f"{bad}:2: 'prompt' is empty" in capsys.readouterr().err
    assert main([*base, "--reward", "sentiment"]) == 2  # refused before the prompts are read
    assert (
        "--reward 'sentiment' is neither a reward model folder nor a scripted reward"
        in capsys.readouterr().err
    )
    assert main([*base, "--reward", "contains:two", "--kl-control", "pid"]) == 2
    assert "--kl-control must be one of fixed, adaptive, got 'pid'" in capsys.readouterr().err
