"""Reward models: learning on synthetic preferences, save -> load, pooling, the CLI (llmlab/rlhf/reward_train.py).

A tiny random decoder learns "a completion containing 'Paris' is preferred" to >= 90% held-out pairwise
accuracy; the untrained model is reported beside it. (About 10 s of the fast tier on an idle 2-core machine.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic_prefs import pairs, step_losses, write_jsonl

from llmlab.cli import main
from llmlab.rlhf.reward_model import load_reward_model
from llmlab.rlhf.reward_train import RewardConfig, train_reward


@pytest.fixture(scope="module")
def trained(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("reward")
    data = write_jsonl(folder / "pairs.jsonl", pairs(160, seed=0, target="Paris"))
    config = RewardConfig(
        model=str(tiny_folder), pairs=str(data), out=str(folder / "rm"), lr=1e-3, epochs=2, batch_size=16,
        val_fraction=0.25, precision="fp32", memory_check=False,
    )  # fmt: skip
    preview, result = train_reward(config)
    return config, preview, result


def test_learns_synthetic_preferences(trained) -> None:
    """>= 90% held-out pairwise accuracy after two epochs; the untrained accuracy is measured before step 1."""
    config, preview, result = trained
    assert preview.stats["pairs"] == 120 and preview.stats["val_pairs"] == 40
    assert result.first_eval is not None and result.last_eval is not None
    assert result.last_eval["val_accuracy"] >= 0.9
    assert result.last_eval["val_loss"] < result.first_eval["val_loss"]
    meta = json.loads((Path(config.out) / "reward_model.json").read_text())
    assert meta["kind"] == "decoder-only" and meta["pooling"] == "last" and meta["lora"] is None
    assert meta["untrained_val_accuracy"] == pytest.approx(result.first_eval["val_accuracy"])


def test_reloads_with_the_same_scores_and_padding_changes_nothing(trained) -> None:
    """The saved folder scores exactly as the trained model did; a text scored alone and in a batch beside a
    longer one (right padding) gets the same score."""
    config, _, _ = trained
    scorer = load_reward_model(config.out)
    texts = ["four Paris models", "four models", "the capital of italy is rome and the next token"]
    alone = [scorer.score(["Question: what"], [t])[0] for t in texts]
    together = scorer.score(["Question: what"] * 3, texts)
    torch.testing.assert_close(torch.tensor(together), torch.tensor(alone))
    assert alone[0] > alone[1]


def test_score_cli(trained, capsys: pytest.CaptureFixture[str]) -> None:
    config, _, _ = trained
    assert main(["reward", "score", config.out, "--text", "greedy Paris", "--text", "greedy rome"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == ["greedy Paris", "greedy rome"]
    assert float(lines[0].split()[0]) > float(lines[1].split()[0])


def test_lora_and_encoder_reward_models_reload(tmp_path: Path, tiny_tok) -> None:
    """A LoRA reward model on a decoder and a fully trained one on an encoder (mean pooling) reload from their
    folders with the held-out loss of the checkpoint that was exported (the best one)."""
    from tiny import save_tiny_llama, tiny_bert

    from llmlab.rlhf.pair_data import collate_pairs, encode_reward_pair
    from llmlab.rlhf.recipe import load_pair_split
    from llmlab.rlhf.reward_train import RewardObjective

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(24, seed=1, target="Paris"))
    bert = tiny_bert(len(tiny_tok))
    bert.config.architectures = ["BertModel"]
    bert.save_pretrained(tmp_path / "bert")
    tiny_tok.save_pretrained(tmp_path / "bert")
    for model, lora in ((save_tiny_llama(tmp_path / "llama"), True), (tmp_path / "bert", False)):
        config = RewardConfig(
            model=str(model), pairs=str(data), out=str(tmp_path / f"rm-{model.name}"), lora=lora, lr=1e-3,
            max_steps=2, batch_size=8, val_fraction=0.25, precision="fp32", memory_check=False,
        )  # fmt: skip
        _, result = train_reward(config)
        assert result is not None and result.best_val_loss is not None
        scorer = load_reward_model(config.out)
        assert scorer.meta["pooling"] == ("last" if lora else "mean") and bool(scorer.meta["lora"]) == lora
        _, val = load_pair_split(config.pairs, "", config.val_fraction, config.seed)
        encoded = [encode_reward_pair(scorer.tokenizer, scorer.model.kind, p, config.seq_len) for p, _ in val]
        with torch.no_grad():
            out = RewardObjective().loss(scorer.model, collate_pairs(encoded, scorer.tokenizer.pad_token_id))
        assert float(out.loss) / len(val) == pytest.approx(result.best_val_loss, abs=1e-5)


def test_bad_pairs_line_is_reported_with_file_and_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    code = main(
        ["reward", "train", "--model", "minilm-l6", "--pairs", str(bad), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    assert f"{bad}:2: pair is missing 'rejected'" in capsys.readouterr().err


def test_two_processes_train_what_one_trains(tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """`reward train --nproc 2` runs in 2 processes (it once ran in one, ignoring --nproc): with --batch-size
    8 each, its losses are those of one process with --batch-size 16."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(64, seed=0, target="Paris"))
    common = ["reward", "train", "--model", str(tiny_folder), "--pairs", str(data), "--max-steps", "3"]
    common += ["--lr", "1e-3", "--val-fraction", "0.25", "--precision", "fp32", "--no-memory-check"]
    assert main([*common, "--batch-size", "16", "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--batch-size", "8", "--nproc", "2", "--out", str(tmp_path / "two")]) == 0

    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert len(one) == len(two) == 3 and two == pytest.approx(one, rel=1e-5)
