"""BEIR-format reader on tiny folders, and nDCG@k with graded gain equal to pytrec_eval (BEIR's scorer)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from llmlab.errors import DataError
from llmlab.evaluation.beir import load_beir
from llmlab.evaluation.metrics.retrieval import evaluate_run


def _write(folder: Path, corpus: list[dict], queries: list[dict], qrels: str, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


CORPUS = [
    {"_id": "d1", "title": "Tea", "text": "Green tea is steamed."},
    {"_id": "d2", "text": "Black tea is oxidised."},
    {"_id": "d3", "title": "", "text": "Coffee is roasted."},
]
QUERIES = [
    {"_id": "q1", "text": "how is tea made"},
    {"_id": "q2", "text": "coffee"},
    {"_id": "q3", "text": "x"},
]


def test_reads_corpus_queries_and_graded_qrels(tmp_path):
    folder = _write(tmp_path / "tea", CORPUS, QUERIES, "q1\td1\t2\nq1\td2\t1\nq2\td3\t1\n")
    collection = load_beir(folder)
    assert collection.name == "tea"
    assert collection.corpus == {
        "d1": ("Tea", "Green tea is steamed."),
        "d2": ("", "Black tea is oxidised."),
        "d3": ("", "Coffee is roasted."),
    }
    assert collection.queries == {"q1": "how is tea made", "q2": "coffee"}  # q3 is not judged in test
    assert collection.qrels == {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}}


def test_bad_files_name_the_line(tmp_path):
    folder = _write(tmp_path / "a", CORPUS, QUERIES, "q1\td1\n")
    with pytest.raises(DataError, match=r"test.tsv:2: expected 3 tab-separated columns"):
        load_beir(folder)
    folder = _write(tmp_path / "b", CORPUS, QUERIES, "q1\td9\t1\n")
    with pytest.raises(DataError, match=r"judge document 'd9'.*every judged document"):
        load_beir(folder)
    folder = _write(tmp_path / "c", CORPUS, QUERIES, "q7\td1\t1\n")
    with pytest.raises(DataError, match="judge query 'q7'"):
        load_beir(folder)
    folder = _write(tmp_path / "d", CORPUS, QUERIES, "q1\td1\t1\n")
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": 5}\n')
    with pytest.raises(DataError, match=r"corpus.jsonl:2: expected an object with string fields _id, text"):
        load_beir(folder)
    with pytest.raises(DataError, match="qrels file is missing"):
        load_beir(tmp_path / "c", "train")


def test_graded_ndcg_equals_pytrec_eval_hand_case():
    """BEIR scores nDCG@10 with pytrec_eval's ndcg_cut: gain = the relevance level (linear), discount
    log2(rank + 1), ideal = judged documents sorted by level.

    q1: run d3 (0), d1 (2), d2 (1), d4 (-). DCG@3 = 0 + 2/log2(3) + 1/log2(4); IDCG = 2/1 + 1/log2(3)
    (d3, judged 0, adds nothing). q2: run d9, d7 (-) and d5 (rel 3) unretrieved: 0.
    Mean nDCG@3 = ((2/log2 3 + 1/2) / (2 + 1/log2 3) + 0) / 2."""
    import pytrec_eval

    qrels = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d5": 3}}
    run = {"q1": {"d3": 4.0, "d1": 3.0, "d2": 2.0, "d4": 1.0}, "q2": {"d9": 2.0, "d7": 1.0}}
    log3 = math.log2(3)
    expected = (2 / log3 + 1 / 2) / (2 + 1 / log3) / 2
    ours = evaluate_run(run, qrels, ks=(3,))["ndcg@3"]
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.3", "recall.3"})
    reference = evaluator.evaluate(run)
    assert ours == pytest.approx(expected, abs=1e-12)
    assert ours == pytest.approx(sum(r["ndcg_cut_3"] for r in reference.values()) / 2, abs=1e-12)
    assert evaluate_run(run, qrels, ks=(3,))["recall@3"] == pytest.approx(
        sum(r["recall_3"] for r in reference.values()) / 2, abs=1e-12
    )
