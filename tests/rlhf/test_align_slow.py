"""Alignment of the real SmolLM2-135M-Instruct on a preference task written for the project (slow tier).

The task (tests/fixtures/alignment, built by its build.py): a reply that starts with "Short answer:" and gives
the answer in a few words is preferred to a long-winded one that buries the same answer. 48 pairs train; 16
questions that appear in no pair are asked before and after, greedily.

- DPO (LoRA r = 8 on every linear layer, 2 epochs; the reference = the base with adapters disabled): the
  held-out pairs' reward accuracy (the chosen side's implicit reward higher) reaches >= 0.9, their log-prob
  margin log pi(chosen) - log pi(rejected) rises by >= 20 nats, and on the 16 questions that are in no pair
  the log-prob of a reply that starts with "Short answer:" rises by >= 5 nats (measured: +7.4). How many greedy
  replies start that way is printed, not bounded (0 of 16 before and after in the run measured here).

A small model's text differs between CPUs; the bounds leave room for that (measured here: see the asserts'
messages). 254 s on the 2-core machine at a load average of about 4.5 (17 minutes at about 17).
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
