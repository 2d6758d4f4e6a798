"""DPO on the shared loop (llmlab/rlhf/dpo_train.py): learning, the reference, resume, the CLI.

Learning: a tiny random decoder whose samples contain the word "two" about 8% of the time is trained on
synthetic pairs where the chosen completion contains "two" and the rejected one does not. The held-out
log-prob margin log pi(chosen) - log pi(rejected) rises, and so does the share of its sampled completions
(seeded, the same prompts and seeds before and after) that contain "two".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from synthetic_prefs import pairs, prompts, step_losses, write_jsonl

from llmlab.cli import main
from llmlab.rlhf.dpo_train import REFERENCE, DPOConfig, train_dpo

TWO = re.compile(r"(?<!\w)two(?!\w)", re.IGNORECASE)


def rate(model, tokenizer, texts: list[str]) -> float:
    """Share of seeded samples (4 per prompt, 12 new tokens) that contain the word "two"."""
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.rlhf.completions import render_prompt

    settings = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=1.0, seed=0)
    rendered = [render_prompt(tokenizer, t) for t in texts] * 4
    outs = Engine(model, tokenizer, precision="fp32").generate(rendered, settings)
    return sum(bool(TWO.search(o.text)) for o in outs) / len(outs)


def test_dpo_raises_the_margin_and_the_preferred_behaviour(tiny_folder: Path, tmp_path: Path) -> None:
    from llmlab.models import load_model
    from llmlab.peft.checkpoint import load_adapter

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(96, seed=2, target="two"))
    config = DPOConfig(
        model=str(tiny_folder), pairs=str(data), out=str(tmp_path / "dpo"), lr=1e-2, epochs=3, batch_size=8,
        beta=0.1, targets="all-linear", val_fraction=0.25, precision="fp32", memory_check=False,
    )  # fmt: skip
    _, result = train_dpo(config)
    assert result is not None and result.first_eval and result.last_eval
    first, last = result.first_eval, result.last_eval
    assert first["val_reward_margin"] == pytest.approx(0.0, abs=1e-5)  # policy = reference at the start
    assert last["val_logp_margin"] > first["val_logp_margin"] + 2
    assert last["val_loss"] < first["val_loss"] - 0.1  # first: log 2, every implicit reward is 0
    loaded = load_model(tiny_folder, device="cpu")
    held_out = prompts(40, seed=99)
    before = rate(loaded.model, loaded.tokenizer, held_out)
    load_adapter(loaded.model, config.out)  # the run folder's top holds the adapter, in peft's format
    after = rate(loaded.model, loaded.tokenizer, held_out)
    assert before <= 0.15 and after >= 0.4, (before, after)


def test_rpo_keeps_the_chosen_completions_likely(tiny_folder: Path, tmp_path: Path) -> None:
    """The same run with --rpo-alpha 1: the NLL term raises the chosen completions' held-out log-prob over the
    reference's (implicit reward > 0) and above plain DPO's, while the preference is still learned."""
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(48, seed=2, target="two"))
    ends = {}
    for alpha in (0.0, 1.0):
        config = DPOConfig(
            model=str(tiny_folder), pairs=str(data), out=str(tmp_path / f"dpo{alpha}"), lr=1e-2, epochs=2,
            batch_size=8, beta=0.1, targets="all-linear", val_fraction=0.25, precision="fp32", memory_check=False,
            rpo_alpha=alpha,
        )  # fmt: skip
        _, result = train_dpo(config)
        assert result is not None and result.first_eval and result.last_eval
        assert result.first_eval["val_chosen_reward"] == pytest.approx(0.0, abs=1e-5)
        ends[alpha] = result.last_eval
    assert ends[1.0]["val_chosen_reward"] > 0
    assert ends[1.0]["val_chosen_reward"] > ends[0.0]["val_chosen_reward"] + 0.1, ends
    assert ends[1.0]["val_logp_margin"] > 0


def test_reference_is_the_base_with_adapters_disabled_and_resume_reuses_it(
    tiny_folder: Path, tmp_path: Path
) -> None:
    """The precomputed reference log-probs are the base model's; a run stopped after 2 steps and resumed to 4
    ends with the adapter bit for bit equal to a run of 4 steps (constant learning rate), reading the saved
    reference log-probs rather than computing them from the trained model."""
    from safetensors.torch import load_file

    from llmlab.models import load_model
    from llmlab.rlhf.dpo_train import DPOConfig as Config
    from llmlab.rlhf.pair_data import collate_pairs, encode_dpo_pair
    from llmlab.rlhf.policy import score_completions
    from llmlab.rlhf.records import read_pairs

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(24, seed=3, target="two"))
    common = dict(model=str(tiny_folder), pairs=str(data), lr=3e-3, batch_size=4, val_fraction=0.0,
                  warmup_ratio=0.0, min_lr_ratio=1.0, precision="fp32", memory_check=False)  # fmt: skip
    train_dpo(Config(out=str(tmp_path / "straight"), max_steps=4, **common))
    train_dpo(Config(out=str(tmp_path / "resumed"), max_steps=2, **common))
    _, result = train_dpo(Config(out=str(tmp_path / "resumed"), resume=str(tmp_path / "resumed"), max_steps=4,
                                 **common))  # fmt: skip
    assert result is not None and result.steps == 4
    a = load_file(tmp_path / "straight" / "trainable.safetensors")
    b = load_file(tmp_path / "resumed" / "trainable.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    loaded = load_model(tiny_folder, device="cpu")
    tokenizer = loaded.tokenizer
    encoded = [encode_dpo_pair(tokenizer, p, {tokenizer.eos_token_id}, 512) for p in read_pairs(data)]
    batch = collate_pairs([e for e in encoded if e is not None], tokenizer.pad_token_id)
    with torch.no_grad():
        base = score_completions(
            loaded.model, batch["input_ids"], batch["completion_mask"]
        ).sequence_logprobs()
    saved = load_file(tmp_path / "resumed" / REFERENCE)["train"]  # (pairs, 2), in training order
    n = len(encoded)
    assert sorted(saved[:, 0].tolist()) == pytest.approx(sorted(base[:n].tolist()), abs=1e-4)
    assert sorted(saved[:, 1].tolist()) == pytest.approx(sorted(base[n:].tolist()), abs=1e-4)


def test_cli_refuses_bad_settings_and_files(
    tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(4, seed=0, target="two"))
    base = ["align", "dpo", "--model", str(tiny_folder), "--pairs", str(data), "--out", str(tmp_path / "o")]
    assert main([*base, "--loss", "squared"]) == 2
    assert "--loss must be one of sigmoid, ipo, robust, hinge, got 'squared'" in capsys.readouterr().err
    assert main([*base, "--beta", "0"]) == 2
    assert "--beta must be > 0, got 0.0" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "same", '
                   '"rejected": "same"}\n')  # fmt: skip
    assert main([*base[:5], str(bad), *base[6:]]) == 2
    assert f"{bad}:2: 'chosen' and 'rejected' are the same text" in capsys.readouterr().err
    assert main([*base[:2], "--model", "minilm-l6", *base[4:]]) == 2
    assert (
        "--model minilm-l6 is encoder-only; alignment trains decoder-only models" in capsys.readouterr().err
    )


def test_two_processes_train_what_one_trains(tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """`align dpo --nproc 2` runs in 2 processes (it once ran in one, ignoring --nproc): with --batch-size 4
    each, its losses are those of one process with --batch-size 8."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(48, seed=2, target="two"))
    common = ["align", "dpo", "--model", str(tiny_folder), "--pairs", str(data), "--max-steps", "3"]
    common += ["--lr", "1e-2", "--targets", "all-linear", "--val-fraction", "0.25", "--precision", "fp32"]
    common += ["--no-memory-check"]
    assert main([*common, "--batch-size", "8", "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--batch-size", "4", "--nproc", "2", "--out", str(tmp_path / "two")]) == 0

    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert len(one) == len(two) == 3 and two == pytest.approx(one, rel=1e-5)
