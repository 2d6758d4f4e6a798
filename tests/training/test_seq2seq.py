"""Encoder-decoder training: the loss equals T5's own, a tiny T5 built from a config learns to reverse letters
(CLI end to end), and `llmlab generate` runs the result."""

from __future__ import annotations

import pytest
import torch
from task_data import T5_TINY_YAML, reverse_records, write_jsonl

from llmlab.cli import main
from llmlab.data.records import Record
from llmlab.errors import ConfigError
from llmlab.training.seq2seq import Seq2SeqObjective, collate_pairs, encode_pair


def test_loss_matches_transformers(tiny_tok):
    """Summed loss = T5's mean `labels` loss × the number of targets; the decoder inputs are T5's own
    right shift of the labels (start token, then the target without its last token)."""
    from tiny import tiny_t5

    model = tiny_t5(len(tiny_tok)).train()
    torch.manual_seed(0)
    records = [
        Record("seq2seq", {"source": "The capital of France", "target": "is Paris."}, "a:1"),
        Record("instruction", {"instruction": "Answer", "input": "two plus two?", "output": "four"}, "a:2"),
    ]
    pairs = [encode_pair(tiny_tok, r, 32) for r in records]
    assert pairs[1].source_ids == tiny_tok("Answer\n\nInput: two plus two?\nOutput:")["input_ids"]
    assert pairs[0].target_ids[-1] == tiny_tok.eos_token_id
    batch = collate_pairs(pairs, pad_id=3, start_id=model.config.decoder_start_token_id)
    labels = batch["labels"]
    torch.testing.assert_close(batch["decoder_input_ids"], model._shift_right(labels))
    model.eval()  # no dropout: the two forwards must see the same network
    out = Seq2SeqObjective().loss(model, batch)
    reference = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
    ).loss
    n = Seq2SeqObjective().units(batch)
    assert n == sum(len(p.target_ids) for p in pairs)
    torch.testing.assert_close(out.loss, reference * n)


def test_tiny_t5_learns_to_reverse(tmp_path, capsys):
    """A T5 (d_model 64, 2 + 2 layers) built from a YAML config with a BPE tokenizer trained on the data
    learns to reverse 4 letters of 8: exact-match accuracy of greedy answers on 100 held-out sources ≥ 0.9
    after 400 steps (measured 1.0; 0.73 after 250)."""
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.models import load_model

    (tmp_path / "t5.yaml").write_text(T5_TINY_YAML)
    data = write_jsonl(tmp_path / "train.jsonl", reverse_records(4000, seed=0))
    out = tmp_path / "t5"
    args = ["finetune", "full", "--model", str(tmp_path / "t5.yaml"), "--data", str(data), "--out", str(out)]
    args += ["--vocab-size", "300", "--lr", "3e-3", "--max-steps", "400", "--batch-size", "32"]
    args += ["--precision", "fp32", "--eval-every", "400", "--val-fraction", "0.05", "--warmup-ratio", "0.1"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "format seq2seq, records 4,000, truncated 0, train examples 3,800, val examples 200" in stdout
    loaded = load_model(out, device="cpu")
    assert loaded.kind == "encoder-decoder"
    engine = Engine(loaded.model, loaded.tokenizer, loaded.kind)
    test = reverse_records(100, seed=1)
    answers = engine.generate([r["source"] for r in test], GenerationConfig(greedy=True, max_new_tokens=8))
    accuracy = sum(a.text.strip() == r["target"] for a, r in zip(answers, test, strict=True)) / len(test)
    assert accuracy >= 0.9
    assert main(["generate", "--model", str(out), test[0]["source"], "--greedy"]) == 0
    assert capsys.readouterr().out.strip() == test[0]["target"]


def test_wrong_kind_and_bad_preset(tmp_path, tiny_folder):
    from llmlab.training.finetune import FinetuneConfig, finetune

    data = write_jsonl(tmp_path / "d.jsonl", reverse_records(4, seed=0))
    with pytest.raises(ConfigError, match="--task seq2seq trains an encoder-decoder model"):
        finetune(FinetuneConfig(model=str(tiny_folder), data=str(data), task="seq2seq"), dry_run=True)
    (tmp_path / "bad.yaml").write_text("d_model: 64\nwidth: 3\n")
    with pytest.raises(ConfigError, match="unknown T5Config field"):
        finetune(FinetuneConfig(model=str(tmp_path / "bad.yaml"), data=str(data)), dry_run=True)
