"""Encoder-only fine-tuning: a tiny BERT learns a synthetic sentiment task end to end (CLI), the run folder is
a checkpoint transformers loads with the same predictions, and bad labels are reported by line."""

from __future__ import annotations

import json

import pytest
import torch
from task_data import save_tiny_bert, sentiment_records, write_jsonl

from llmlab.cli import main
from llmlab.data.records import load_records
from llmlab.errors import ConfigError
from llmlab.training.classify import ClassificationObjective, collate_labelled, encode_labelled, parse_labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-layer BERT (hidden 64) fine-tuned for 3 epochs on 400 synthetic reviews (~70 steps)."""
    root = tmp_path_factory.mktemp("classify")
    bert = save_tiny_bert(root / "bert")
    train = write_jsonl(root / "train.jsonl", sentiment_records(400, seed=0))
    test = write_jsonl(root / "test.jsonl", sentiment_records(200, seed=1))
    out = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    args = ["finetune", "full", "--model", str(bert), "--task", "classify", "--labels", "negative,positive"]
    args += ["--data", str(train), "--out", str(out), "--lr", "1e-3", "--epochs", "3", "--batch-size", "16"]
    assert main([*args, "--precision", "fp32", "--no-memory-check"]) == 0
    torch.set_num_threads(threads)
    return out, test


def test_tiny_bert_learns_sentiment(trained, capsys):
    """The label is the majority of 3 or 5 polar words among 7: held-out accuracy ≥ 0.85 after ~70 steps
    (measured 0.955; chance 0.5)."""
    out, test = trained
    assert main(["classify", "--model", str(out), "--data", str(test), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["items"] == 200 and result["accuracy"] >= 0.85
    assert set(result["per_label"]) == {"negative", "positive"}


def test_run_is_a_transformers_classifier(trained, capsys):
    """AutoModelForSequenceClassification loads the run folder: the label names and the probabilities
    equal `llmlab classify`'s."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, _ = trained
    texts = ["good great tasty food", "rude slow bad stale service"]
    assert main(["classify", "--model", str(out), *texts, "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        probs = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits.softmax(-1)
    assert [r["label"] for r in ours] == [model.config.id2label[int(i)] for i in probs.argmax(-1)]
    assert [r["probability"] for r in ours] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-4)


def test_loss_is_summed_cross_entropy(tmp_path):
    """The objective's loss is the cross-entropy summed over the examples (units = examples)."""
    from task_data import bert_tokenizer
    from tiny import tiny_bert

    tokenizer = bert_tokenizer()
    model = tiny_bert(len(tokenizer), num_labels=2).train()
    records = load_records(write_jsonl(tmp_path / "d.jsonl", sentiment_records(5, seed=2)), "label").records
    items = [encode_labelled(tokenizer, r, ["negative", "positive"], 16) for r in records]
    batch = collate_labelled(items, pad_id=0)
    out = ClassificationObjective().loss(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum")
    torch.testing.assert_close(out.loss, expected)
    assert ClassificationObjective().units(batch) == 5


def test_labels_flag_and_bad_records(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--labels needs at least two labels"):
        parse_labels("positive")
    with pytest.raises(ConfigError, match="distinct comma-separated names"):
        parse_labels("a,,b")
    data = tmp_path / "train.jsonl"
    data.write_text(
        '{"text": "good food", "label": "positive"}\n{"text": "ok", "label": "neutral"}\n'
        '{"text": "bad", "label": true}\n{"text": "cold", "label": 0}\n'
    )
    bert = save_tiny_bert(tmp_path / "bert")
    args = ["finetune", "full", "--model", str(bert), "--data", str(data), "--labels", "negative,positive"]
    assert main([*args, "--dry-run", "--val-fraction", "0"]) == 0
    captured = capsys.readouterr()
    assert f"{data}:2: label 'neutral' is not one of --labels negative,positive" in captured.err
    assert f"{data}:3: field 'label' must be a label name or its index, got True" in captured.err
    assert captured.out.startswith(f"example 1 ({data}:1): 4 tokens, label positive\n[CLS] good food [SEP]\n")
    assert "format label, records 3, truncated 0, labels negative 1, positive 1" in captured.out


def test_lora_trains_a_classifier_whose_head_travels_with_the_adapter(tmp_path, capsys):
    """`finetune lora --task classify`: the LoRA matrices and the new head train (the head once stayed random
    and frozen, and the loss at ln 2); `llmlab classify --model RUN` rebuilds the classifier from the base
    model, the adapter and its labels. The tiny BERT of the fixture above, LoRA r 8 on query and value, lr
    1e-2: held-out accuracy >= 0.8 (measured 0.91; chance 0.5). The other PEFT methods refuse the task with
    what to run."""
    bert = save_tiny_bert(tmp_path / "bert")
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_records(400, seed=0))
    test = write_jsonl(tmp_path / "test.jsonl", sentiment_records(200, seed=1))
    args = ["--model", str(bert), "--task", "classify", "--labels", "negative,positive", "--data", str(train)]
    args += [
        "--precision",
        "fp32",
        "--no-memory-check",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--lr",
        "1e-2",
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lora = ["finetune", "lora", *args, "--targets", "query,value"]
        assert main([*lora, "--out", str(tmp_path / "r")]) == 0
        assert f"run it with: llmlab classify --model {tmp_path / 'r'} TEXT" in capsys.readouterr().out
        assert main(["classify", "--model", str(tmp_path / "r"), "--data", str(test), "--json"]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] >= 0.8, result
    assert main(["finetune", "adapters", *args, "--out", str(tmp_path / "a")]) == 2
    assert "only LoRA trains a classification head" in capsys.readouterr().err
