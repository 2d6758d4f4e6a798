"""Alignment of the real SmolLM2-135M-Instruct on a preference task written for the project (slow tier).

The task (tests/fixtures/alignment, built by its build.py): a reply that starts with "Short answer:" and gives
the answer in a few words is preferred to a long-winded one that buries the same answer. 48 pairs train; 16
questions that appear in no pair are asked before and after, greedily.

- DPO (LoRA r = 8 on every linear layer, 2 epochs; the reference = the base with adapters disabled): the
  held-out pairs' reward accuracy (the chosen side's implicit reward higher) reaches >= 0.9, their log-prob
  margin log pi(chosen) - log pi(rejected) rises by >= 20 nats, and on the 16 questions that are in no pair
  the log-prob of a reply that starts with "Short answer:" rises by >= 5 nats (measured: +7.4). How many greedy
  replies start that way is printed, not bounded (0 of 16 before and after in the run measured here).

- PPO (`llmlab align ppo`, LoRA r = 8 on every linear layer; the reference = the base with adapters disabled)
  against a scripted reward written for the project (tests/fixtures/alignment/concise.py: 1 - words / 12 for
  a non-empty reply, 0 for an empty one or one of 12 words or more), 8 rollout phases of 16 completions of
  the 56 pair and PPO questions (--lr 2e-3): on the 16 held-out questions (4 seeded samples each, the same
  seeds before and after) the mean reward rises from <= 0.15 to >= 0.30 (measured: 0.048 -> 0.516), the
  share of replies of 11 words or fewer (reward > 0) from <= 0.3 to >= 0.6 (measured: 0.12 -> 0.94), and the
  KL to the reference stays below 12 nats per completion in every phase (measured: at most 7.4). With
  ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2: 0.048 -> 0.431, 0.12 -> 0.88, KL at most 6.4.

A small model's text differs between CPUs; the bounds leave room for that (measured here: see the asserts'
messages). DPO: 254 s on the 2-core machine at a load average of about 4.5 (17 minutes at about 17). PPO:
271 s at a load average of 4 to 5, 351 s at 3.5 to 6 (678 s with AVX2 kernels at 4 to 7); the machine was
never quiet, so 2 quiet cores should take less.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "alignment"
MODEL = "smollm2-135m-instruct"
PREFIX = "Short answer:"


def held_out() -> list[str]:
    lines = (FIXTURES / "held_out.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["prompt"] for line in lines]


def short_answers(model, tokenizer) -> tuple[int, float, list[str]]:  # type: ignore[no-untyped-def]
    """On the 16 held-out questions: how many greedy replies start with "Short answer:", the mean log-prob
    of a reply that starts with it, log pi("Short answer:" | question), and the replies."""
    import torch

    from llmlab.data.tokenize import encode_prompt
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.rlhf.completions import render_prompt
    from llmlab.rlhf.policy import score_completions

    prompts = [render_prompt(tokenizer, q) for q in held_out()]
    settings = GenerationConfig(max_new_tokens=8, temperature=0.0)
    outs = Engine(model, tokenizer, precision="fp32").generate(prompts, settings)
    replies = [o.text for o in outs]
    prefix = tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
    rows = [encode_prompt(tokenizer, p) + prefix for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, len(r) - len(prefix) : len(r)] = True
    with torch.no_grad():
        logp = score_completions(model, ids, mask).sequence_logprobs()
    rate = sum(r.strip().startswith(PREFIX) for r in replies)
    return rate, float(logp.mean()), replies


@pytest.mark.slow
def test_dpo_teaches_smollm2_the_preferred_style(llmlab_cache: Path, tmp_path: Path) -> None:
    from llmlab.models import load_model
    from llmlab.peft.checkpoint import load_adapter
    from llmlab.rlhf.dpo_train import DPOConfig, train_dpo

    config = DPOConfig(
        model=MODEL, pairs=str(FIXTURES / "pairs.jsonl"), out=str(tmp_path / "dpo"), epochs=2, batch_size=4,
        lr=1e-3, beta=0.1, targets="all-linear", val_fraction=0.25, precision="fp32", memory_check=False,
    )  # fmt: skip
    _, result = train_dpo(config)
    assert result is not None and result.first_eval and result.last_eval
    first, last = result.first_eval, result.last_eval
    assert first["val_reward_margin"] == pytest.approx(0, abs=1e-3)  # the policy is the reference
    assert last["val_reward_accuracy"] >= 0.9, last
    assert last["val_logp_margin"] >= first["val_logp_margin"] + 20, (first, last)

    loaded = load_model(MODEL, device="cpu")
    before, logp_before, replies_before = short_answers(loaded.model, loaded.tokenizer)
    load_adapter(loaded.model, config.out)
    after, logp_after, _ = short_answers(loaded.model, loaded.tokenizer)
    print(f"greedy replies starting with {PREFIX!r}: {before}/16 before, {after}/16 after; mean log-prob of "
          f"that start {logp_before:.2f} before, {logp_after:.2f} after")  # fmt: skip
    # Measured (Intel AMX, under load): -15.07 before, -7.64 after (+7.4 nats: the start became ~1,700 times
    # as likely); the greedy replies still start in the model's own way (0 of 16 before and after), so the
    # greedy rate is printed, not bounded: two epochs of 36 pairs shift the distribution, not yet its mode.
    assert logp_after >= logp_before + 5, (logp_before, logp_after)
    assert before <= 2, replies_before


KL_BOUND = 12.0


@pytest.mark.slow
def test_ppo_makes_smollm2_answer_briefly(
    llmlab_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PPO with the CLI, a LoRA policy and a scripted reward: held-out reward and brevity rate rise, KL bounded."""
    from llmlab.cli import main

    monkeypatch.syspath_prepend(str(FIXTURES))  # --reward python:concise:reward
    questions = [json.loads(line)["prompt"] for name in ("pairs.jsonl", "prompts.jsonl")
                 for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]  # fmt: skip
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions), encoding="utf-8")
    out = tmp_path / "ppo"
    code = main([
        "align", "ppo", "--policy", MODEL, "--reward", "python:concise:reward", "--prompts", str(prompts),
        "--val", str(FIXTURES / "held_out.jsonl"), "--iterations", "8", "--rollout-batch", "16",
        "--batch-size", "8", "--max-new-tokens", "24", "--eval-samples", "4", "--lr", "2e-3",
        "--targets", "all-linear", "--out", str(out),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "held-out prompts: mean reward" in printed and "(4 samples per prompt)" in printed
    evaluation = json.loads((out / "eval.json").read_text())
    before, after = evaluation["before"], evaluation["after"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    phases = [r for r in records if "reward" in r][::4]  # 16 completions / 8 per step x 2 PPO epochs
    print(f"held-out mean reward {before['reward']:.3f} -> {after['reward']:.3f}; replies of <= 11 words "
          f"{before['positive']:.2f} -> {after['positive']:.2f}; tokens {before['length']:.1f} -> "
          f"{after['length']:.1f}; phases' reward {[round(r['reward'], 3) for r in phases]}, "
          f"KL {[round(r['kl'], 2) for r in phases]}")  # fmt: skip
    # Measured (load average 6-10): reward 0.048 -> 0.516, rate 0.12 -> 0.94, 22.5 -> 8.9 tokens; the
    # phases' reward 0.057, 0.245, 0.281, 0.312, 0.391, 0.391, 0.458, 0.526; KL at most 7.35.
    assert len(phases) == 8 and all(r.get("nonfinite", 0) == 0 for r in phases)
    assert before["reward"] <= 0.15 and before["positive"] <= 0.3, before
    assert after["reward"] >= 0.30 and after["reward"] >= before["reward"] + 0.2, (before, after)
    assert after["positive"] >= 0.6, (before, after)
    assert max(r["kl"] for r in phases) < KL_BOUND, phases
    assert (out / "adapter_config.json").is_file() and (out / "reward.png").is_file()
