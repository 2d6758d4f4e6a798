"""`llmlab eval metric ...` end to end on files: tables, JSON equal to the library, bootstrap intervals, and
file:line errors that name what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmlab.cli import main
from llmlab.evaluation.metrics.bleu import corpus_bleu
from llmlab.evaluation.metrics.rouge import mean_rouge, rouge

PREDS = ["the cat sat on the mat", "a dog ran in the park", "Paris is the capital of France"]
REFS = ["the cat was sitting on the mat", "a dog was running in a park", "the capital of France is Paris"]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    p, r = tmp_path / "p.txt", tmp_path / "r.txt"
    p.write_text("\n".join(PREDS) + "\n", encoding="utf-8")
    r.write_text("\n".join(REFS) + "\n", encoding="utf-8")
    return p, r


def run_json(capsys, *argv: str) -> dict:
    assert main(["eval", "metric", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_rouge_json_equals_library(files, capsys) -> None:
    p, r = files
    data = run_json(capsys, "rouge", "--predictions", str(p), "--references", str(r), "--stem")
    expected = mean_rouge(rouge(PREDS, [[x] for x in REFS], stem=True))
    assert data["items"] == 3 and data["stemmer"] == "porter"
    for t, score in expected.items():
        assert data["scores"][t] == {
            "precision": score.precision,
            "recall": score.recall,
            "f1": score.fmeasure,
        }


def test_rouge_table(files, capsys) -> None:
    p, r = files
    assert (
        main(
            ["eval", "metric", "rouge", "--predictions", str(p), "--references", str(r), "--types", "rouge1"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rouge (3 items)" in out and "rouge1" in out and "rouge2" not in out
    assert f"{mean_rouge(rouge(PREDS, [[x] for x in REFS], ['rouge1']))['rouge1'].fmeasure:.4g}" in out


def test_bleu_with_bootstrap(files, capsys) -> None:
    p, r = files
    data = run_json(
        capsys, "bleu", "--predictions", str(p), "--references", str(r), "--bootstrap", "200", "--seed", "5"
    )
    assert data["scores"]["bleu"]["score"] == corpus_bleu(PREDS, [[x] for x in REFS]).score
    assert data["signature"].startswith("nrefs:1|bs:200|seed:5|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    low, high = data["bootstrap"]["intervals"]["bleu"]
    assert 0 <= low <= high <= 100
    again = run_json(
        capsys, "bleu", "--predictions", str(p), "--references", str(r), "--bootstrap", "200", "--seed", "5"
    )
    assert again["bootstrap"] == data["bootstrap"]


def test_several_reference_files_and_jsonl_lists(tmp_path: Path, capsys) -> None:
    p = tmp_path / "p.txt"
    p.write_text("four\nParis\n", encoding="utf-8")
    r1, r2 = tmp_path / "r1.txt", tmp_path / "r2.txt"
    r1.write_text("4\nparis\n", encoding="utf-8")
    r2.write_text("four\nRome\n", encoding="utf-8")
    both = run_json(
        capsys, "accuracy", "--predictions", str(p), "--references", str(r1), "--references", str(r2)
    )
    assert both["scores"]["accuracy"]["score"] == 0.5  # "four" matches r2; "Paris" matches neither exactly
    lists = tmp_path / "r.jsonl"
    lists.write_text('["4", "four"]\n["paris", "Paris"]\n', encoding="utf-8")
    assert (
        run_json(capsys, "accuracy", "--predictions", str(p), "--references", str(lists))["scores"][
            "accuracy"
        ]["score"]
        == 1.0
    )


def test_exact_match_f1_chrf(files, capsys) -> None:
    p, r = files
    em = run_json(capsys, "exact-match", "--predictions", str(p), "--references", str(r))
    f1 = run_json(capsys, "f1", "--predictions", str(p), "--references", str(r))
    chrf = run_json(capsys, "chrf", "--predictions", str(p), "--references", str(r), "--word-order", "2")
    assert em["scores"]["exact_match"]["score"] == 0.0
    assert 0 < f1["scores"]["f1"]["score"] < 1
    assert "chrF2++" in chrf["scores"] and "nw:2" in chrf["signature"]


def test_retrieval(tmp_path: Path, capsys) -> None:
    run, qrels = tmp_path / "run.txt", tmp_path / "qrels.txt"
    run.write_text("q1 Q0 d2 1 2.0 x\nq1 Q0 d1 2 1.0 x\n", encoding="utf-8")
    qrels.write_text("q1 0 d1 1\n", encoding="utf-8")
    data = run_json(capsys, "retrieval", "--run", str(run), "--qrels", str(qrels), "--k", "1", "--k", "2")
    assert data["scores"]["recall@1"]["score"] == 0.0
    assert data["scores"]["mrr@2"]["score"] == 0.5


def test_perplexity(tiny_folder: Path, tmp_path: Path, capsys) -> None:
    from llmlab.evaluation.metrics.perplexity import perplexity
    from llmlab.models import load_model

    data = tmp_path / "text.jsonl"
    data.write_text(
        '{"text": "The capital of France is Paris."}\n{"text": "Answer: four."}\n', encoding="utf-8"
    )
    out = run_json(capsys, "perplexity", "--model", str(tiny_folder), "--data", str(data), "--device", "cpu")
    loaded = load_model(tiny_folder, device="cpu")
    expected = perplexity(
        loaded.model, loaded.tokenizer, ["The capital of France is Paris.", "Answer: four."]
    )
    assert out["scores"]["perplexity"]["score"] == pytest.approx(expected.perplexity, rel=1e-6)
    assert out["tokens"] == expected.tokens


def error_of(capsys, *argv: str) -> str:
    assert main(["eval", "metric", *argv]) == 2
    return capsys.readouterr().err


def test_files_of_different_lengths_name_both_counts(files, tmp_path: Path, capsys) -> None:
    p, _ = files
    short = tmp_path / "short.txt"
    short.write_text("one\ntwo\n", encoding="utf-8")
    err = error_of(capsys, "bleu", "--predictions", str(p), "--references", str(short))
    assert f"error: {p}:3: 3 predictions but {short} has 2 references" in err


def test_bad_jsonl_lines(files, tmp_path: Path, capsys) -> None:
    p, _ = files
    bad = tmp_path / "r.jsonl"
    bad.write_text('"fine"\n{"oops": 1}\n"x"\n', encoding="utf-8")
    assert f"{bad}:2: expected a JSON string, or a non-empty array of strings" in error_of(
        capsys, "rouge", "--predictions", str(p), "--references", str(bad)
    )
    bad.write_text('"fine"\n"unterminated\n"x"\n', encoding="utf-8")
    assert f"{bad}:2: invalid JSON" in error_of(
        capsys, "rouge", "--predictions", str(p), "--references", str(bad)
    )


def test_unreadable_and_empty_files(files, tmp_path: Path, capsys) -> None:
    p, r = files
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"ok\ncaf\xe9\nok\n")
    assert f"{latin}:2: not UTF-8 text" in error_of(
        capsys, "f1", "--predictions", str(latin), "--references", str(r)
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert "is empty" in error_of(capsys, "f1", "--predictions", str(empty), "--references", str(r))
    missing = tmp_path / "missing.txt"
    assert f"file not found: {missing}" in error_of(
        capsys, "f1", "--predictions", str(p), "--references", str(missing)
    )


def test_bad_options(files, capsys) -> None:
    p, r = files
    assert "unknown ROUGE type 'rouge0'" in error_of(
        capsys, "rouge", "--predictions", str(p), "--references", str(r), "--types", "rouge1,rouge0"
    )
    assert "--bootstrap must be a positive" in error_of(
        capsys, "accuracy", "--predictions", str(p), "--references", str(r), "--bootstrap", "-3"
    )


def test_help_shows_the_definitions(capsys) -> None:
    for name, phrase in [
        ("accuracy", "accuracy = correct / total"),
        ("bleu", "geometric mean of"),
        ("rouge", "F1 = 2PR / (P + R)"),
    ]:
        with pytest.raises(SystemExit):
            main(["eval", "metric", name, "--help"])
        assert phrase in " ".join(capsys.readouterr().out.split())
