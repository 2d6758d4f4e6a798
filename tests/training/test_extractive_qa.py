"""Extractive QA (`--task extractive-qa`): the loss and logits are BertForQuestionAnswering's, windows and
targets follow SQuAD 2.0 ([CLS] when a window has no answer), span decoding respects the rules and the
no-answer margin, a tiny BERT learns a synthetic span task through the CLI (full and LoRA), bad records are
reported by file and line."""

from __future__ import annotations

import json
import random

import pytest
import torch
from task_data import bert_tokenizer, save_tiny_bert, write_jsonl

from llmlab.cli import main
from llmlab.errors import DataError
from llmlab.training.extractive_qa import (
    ExtractiveQAObjective,
    QARecord,
    best_span,
    collate_windows,
    encode_qa,
    load_qa_records,
)

WORDS = [f"w{i}" for i in range(40)]


def qa_tokenizer():
    """A word-level BERT tokenizer with BERT's pair template ([CLS] A [SEP] B [SEP], segment ids 0/1)."""
    return bert_tokenizer(["where", "gold", "is", "the", *WORDS])


def span_records(n: int, seed: int) -> list[dict]:
    """Contexts of 12 random words; in 3 of 4, "gold X" somewhere: the answer is "gold X" (two words, so the
    end depends on the start's neighbour); otherwise unanswerable (null)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(12)]
        answer = None
        if rng.random() < 0.75:
            at = rng.randrange(11)
            words[at] = "gold"
            answer = f"gold {words[at + 1]}"
        context = " ".join(words)
        record = {"question": "where is the gold", "context": context, "answer": answer}
        if answer is not None:
            record["answer_start"] = context.index(answer)
        out.append(record)
    return out


def save_tiny_bert_qa(folder):
    return save_tiny_bert(folder, tokenizer=qa_tokenizer())


def tiny_qa_model(seed: int = 0):
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(qa_tokenizer()), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForQuestionAnswering(config).eval()


def records_of(rows: list[dict]) -> list[QARecord]:
    return [QARecord(r["question"], r["context"], r["answer"], r.get("answer_start"), "t") for r in rows]


def test_loss_matches_bert_for_question_answering():
    """Summed per-window loss / B equals transformers' BertForQuestionAnswering loss (mean over the batch
    of (start CE + end CE) / 2) on the same weights and batch; the logits are the model's own."""
    tokenizer, model = qa_tokenizer(), tiny_qa_model()
    windows = [w for r in records_of(span_records(6, seed=3)) for w in encode_qa(tokenizer, r, 32)]
    batch = collate_windows(windows, pad_id=0)
    ours = ExtractiveQAObjective().loss(model, batch)
    theirs = model(
        input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"], start_positions=batch["start_positions"],
        end_positions=batch["end_positions"],
    )  # fmt: skip
    B = len(windows)
    torch.testing.assert_close(ours.loss / B, theirs.loss)
    assert ExtractiveQAObjective().units(batch) == B


def test_windows_and_targets():
    """The answer's first and last token in each window that holds it; [CLS] (0) in a window that does not,
    and for an unanswerable record; the token type of the context is 1."""
    tokenizer = qa_tokenizer()
    context = " ".join(WORDS[:20]) + " gold w7"
    record = QARecord("where is the gold", context, "gold w7", context.index("gold w7"), "t")
    windows = encode_qa(tokenizer, record, seq_len=16, stride=4)
    assert len(windows) > 1 and all(len(w) <= 16 for w in windows)
    last = windows[-1]
    assert tokenizer.convert_ids_to_tokens(last.input_ids[last.start : last.end + 1]) == ["gold", "w7"]
    assert last.token_type_ids[last.start] == 1
    assert all((w.start, w.end) == (0, 0) for w in windows[:-1])
    none = encode_qa(tokenizer, QARecord("where is the gold", "w1 w2", None, None, "t"), 16)
    assert [(w.start, w.end) for w in none] == [(0, 0)]


def test_best_span_rules_offsets_and_null_margin():
    """end >= start, at most max_tokens, context tokens only; characters through offsets; the null score
    is s_0 + e_0."""
    offsets = [(0, 0), (0, 0), (0, 4), (5, 9), (10, 14), (0, 0)]
    mask = [False, False, True, True, True, False]
    start = [1.0, 9.0, 0.0, 3.0, 0.5, 0.0]  # position 1 is a question token: never chosen
    end = [2.0, 9.0, 4.0, 0.0, 2.5, 0.0]  # the best end (2) is before the best start (3)
    got = best_span(start, end, offsets, mask, max_tokens=30)
    assert got is not None
    assert (got.start, got.end) == (5, 14) and got.score == pytest.approx(5.5)  # tokens 3..4
    assert got.null_score == pytest.approx(3.0) and got.margin == pytest.approx(2.5)
    one = best_span(start, end, offsets, mask, max_tokens=1)
    assert one is not None and (one.start, one.end) == (0, 4) and one.score == pytest.approx(4.0)  # 0 + 4
    assert best_span(start, end, offsets, [False] * 6) is None


def test_reader_margin_decides_not_found():
    """The reader answers only when the best span beats the no-answer score by more than its margin."""
    from llmlab.rag.reader import Reader, ReadSpan

    span = ReadSpan(0, 0, 4, "gold", margin=1.5)
    assert Reader(None, None, margin=1.0).answers(span)
    assert not Reader(None, None, margin=2.0).answers(span)
    assert not Reader(None, None, margin=-5.0).answers(ReadSpan(0, 0, 0, " ", 3.0))


def test_bad_records_name_file_and_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"question": "q", "context": "a b c", "answer": "b"},
        {"question": "q", "context": "a b c", "answer": "z"},
        {"question": "q", "context": "a b c", "answer": "b", "answer_start": 0},
        {"question": "q", "context": "a b c"},
        {"question": "", "context": "a b c", "answer": None},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n", encoding="utf-8")
    records, problems = load_qa_records(path)
    assert [(r.answer, r.answer_start) for r in records] == [("b", 2)]
    assert problems[0] == f'{path}:2: "answer" \'z\' is not in "context"; fix the offset or the answer'
    assert problems[1].startswith(f'{path}:3: "answer" \'b\' is not in "context" at answer_start 0')
    assert problems[2].startswith(f'{path}:4: "answer" is missing; give the answer text, or null')
    assert problems[3] == f'{path}:5: "question" must be a non-empty string'
    assert problems[4].startswith(f"{path}:6: invalid JSON")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps(rows[1]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no extractive-qa record"):
        load_qa_records(empty)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-layer BERT (hidden 64) fully fine-tuned for 20 epochs on 400 synthetic span records (500 steps, seconds)."""
    root = tmp_path_factory.mktemp("qa")
    bert = save_tiny_bert_qa(root / "bert")
    train = write_jsonl(root / "train.jsonl", span_records(400, seed=0))
    out = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    args = ["finetune", "full", "--model", str(bert), "--task", "extractive-qa", "--data", str(train)]
    args += ["--out", str(out), "--lr", "2e-3", "--epochs", "20", "--batch-size", "16", "--seq-len", "32"]
    assert main([*args, "--precision", "fp32", "--no-memory-check", "--val-fraction", "0"]) == 0
    torch.set_num_threads(threads)
    return bert, out, root


def test_tiny_bert_learns_a_span_task(trained):
    """Held-out exact answers (the span, or no answer) >= 0.9 after 500 steps (measured 100/100; chance is
    far below: 1 in ~80 spans)."""
    from llmlab.rag.reader import load_reader

    _, out, _ = trained
    reader = load_reader(str(out))
    test = span_records(100, seed=1)
    right = 0
    for r in test:
        span = reader.read(r["question"], [r["context"]])
        said = span.text if reader.answers(span) and span is not None else None
        right += said == r["answer"]
    print(f"exact {right}/{len(test)}")
    assert right / len(test) >= 0.9, f"exact {right}/{len(test)}"


def test_lora_trains_the_span_head_with_the_adapter(trained, tmp_path):
    """`finetune lora --task extractive-qa` saves qa_outputs with the adapter (peft's QUESTION_ANS), and the
    reader loads it on the adapter's base model."""
    from llmlab.rag.reader import load_reader

    bert, _, root = trained
    out = tmp_path / "lora"
    args = [
        "finetune",
        "lora",
        "--model",
        str(bert),
        "--task",
        "extractive-qa",
        "--data",
        str(root / "train.jsonl"),
    ]
    args += ["--out", str(out), "--max-steps", "3", "--batch-size", "8", "--seq-len", "32", "--rank", "4"]
    assert main([*args, "--precision", "fp32", "--no-memory-check", "--val-fraction", "0"]) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "QUESTION_ANS" and config["modules_to_save"] == ["qa_outputs"]
    reader = load_reader(str(out))
    assert type(reader.model).__name__ == "BertForQuestionAnswering"
    assert reader.read("where is the gold", ["w1 gold w2 w3"]) is not None


def test_peft_methods_other_than_lora_are_refused(trained, tmp_path, capsys):
    bert, _, root = trained
    data = str(root / "train.jsonl")
    code = main(["finetune", "prompt-tuning", "--model", str(bert), "--task", "extractive-qa", "--data", data,
                 "--out", str(tmp_path / "p")])  # fmt: skip
    assert code != 0
    assert (
        "finetune prompt-tuning --task extractive-qa: of the PEFT methods only LoRA trains a span head"
        in (capsys.readouterr().err)
    )


def test_reader_data_builder_on_a_tiny_squad_file(tmp_path):
    """bench/data/reader/build.py keeps the annotators' offsets and SQuAD's own unanswerable questions (null),
    and refuses a file named like a dev split."""
    import lzma
    import subprocess
    import sys
    from pathlib import Path

    build = Path(__file__).resolve().parents[2] / "bench" / "data" / "reader" / "build.py"
    paragraphs = [
        {"context": "The boiler is in the cellar. It was fitted in 1998.", "qas": [
            {"id": "a", "question": "Where is the boiler?", "answers": [{"text": "in the cellar", "answer_start": 14}]},
            {"id": "b", "question": "Who painted the cellar?", "answers": [], "is_impossible": True},
        ]},
        {"context": "The boiler in the cellar was serviced by Ann last winter.", "qas": []},
    ]  # fmt: skip
    squad = {
        "data": [{"title": "House", "paragraphs": paragraphs}, {"title": "Shed", "paragraphs": paragraphs}]
    }
    train = tmp_path / "train-v2.0.json"
    train.write_text(json.dumps(squad), encoding="utf-8")
    out = tmp_path / "records.jsonl.xz"
    run = [sys.executable, str(build), "--squad", str(train), "--out", str(out)]
    subprocess.run(run, check=True, capture_output=True)
    with lzma.open(out, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    answered = [r for r in records if r["answer"] == "in the cellar"]
    assert answered and all(r["context"][r["answer_start"] :].startswith("in the cellar") for r in answered)
    assert any(r["question"] == "Who painted the cellar?" and r["answer"] is None for r in records)
    dev = tmp_path / "dev-v2.0.json"
    dev.write_text(json.dumps(squad), encoding="utf-8")
    refused = subprocess.run([*run[:3], str(dev), "--out", str(out)], capture_output=True, text=True)
    assert refused.returncode != 0 and "looks like a dev/test split" in refused.stderr


def _reader_build():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "data" / "reader" / "build.py"
    spec = importlib.util.spec_from_file_location("reader_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reader_builder_makes_questions_unanswerable_by_changing_one_fact():
    """build.py --adversarial: a number the paragraph holds shifts to one the document never mentions, a name
    becomes another document's name of as many words, a word becomes its antonym only when the paragraph has
    the word and the document not the antonym; a question with nothing to change is left out."""
    import random

    build = _reader_build()
    context = "The Eiffel Tower was the first tower built in Paris, in 1889, by Gustave Eiffel."
    document = context + "\nIt was repainted in 1890 and 1891."
    rng = random.Random(0)
    number = build.shifted_number("When was the first tower built in 1889?", context, document, rng)
    changed = number.removeprefix("When was the first tower built in ").removesuffix("?")
    assert changed.isdigit() and changed not in document and abs(int(changed) - 1889) <= 9
    assert build.shifted_number("When was it built?", context, document, rng) is None
    assert build.antonym("What was the first tower built in Paris?", context, document, rng) == (
        "What was the last tower built in Paris?"
    )
    assert build.antonym("What was the first tower?", context, document + " The last one.", rng) is None
    common = {"the", "tower"}
    swapped = build.swapped_name(
        "Who built the tower in Paris?", context, document, ["Lyon", "New York", "Paris"], common, rng
    )
    assert swapped == "Who built the tower in Lyon?"
    assert build.names_of("Where did Gustave Eiffel live? The tower", common) == ["Gustave Eiffel"]
    records = [
        {"question": "When was the tower built in 1889?", "context": context, "answer": "1889",
         "answer_start": context.index("1889"), "group": "squad:Eiffel"},
        {"question": "Why?", "context": context, "answer": "by Gustave Eiffel", "answer_start": 60,
         "group": "squad:Eiffel"},
    ]  # fmt: skip
    made = build.adversarial(records, 1.0, 14)
    assert len(made) == 1 and made[0]["answer"] is None and made[0]["answer_start"] is None
    assert made[0]["context"] == context and made[0]["question"] != records[0]["question"]


def test_reader_split_with_adversarial_keeps_the_first_stage_data(tmp_path):
    """--split --adversarial writes train.jsonl and heldout.jsonl as --split alone does (`make reader`'s data), heldout-adversarial.jsonl = heldout.jsonl + made-unanswerable twins of
    held-out questions only, and adversarial.jsonl draws only on training documents."""
    build = _reader_build()
    build.split(tmp_path / "plain")
    build.split(tmp_path / "both", with_adversarial=True)

    def read(name):
        return [json.loads(x) for x in (tmp_path / name).read_text(encoding="utf-8").splitlines()]

    for name in ("train.jsonl", "heldout.jsonl"):
        assert read(f"plain/{name}") == read(f"both/{name}")
    heldout, extended = read("both/heldout.jsonl"), read("both/heldout-adversarial.jsonl")
    made = extended[len(heldout) :]
    assert extended[: len(heldout)] == heldout and len(made) >= 50
    assert all(r["answer"] is None for r in made)
    held_groups = {r["group"] for r in heldout}
    assert {r["group"] for r in made} <= held_groups
    second = read("both/adversarial.jsonl")
    assert not {r["group"] for r in second} & held_groups
    asked = {(r["group"], r["question"]) for r in read("both/train.jsonl")}
    new = [r for r in second if (r["group"], r["question"]) not in asked]
    assert new and all(r["answer"] is None for r in new)
    assert sum(r["answer"] is not None for r in second) >= len(new)  # answering is drawn again, not forgotten
