"""recall@k, MRR@k and nDCG@k on hand-computed TREC runs, and file:line errors for bad lines."""

from __future__ import annotations

import math

import pytest

from llmlab.errors import ConfigError, DataError
from llmlab.evaluation.metrics.retrieval import evaluate_run, parse_qrels, parse_run, rank, retrieval_scores

QRELS = """q1 0 d1 2
q1 0 d2 1
q1 0 d3 0
q2 0 d4 1
q3 0 d9 0
q4 0 d8 1
"""
RUN = """q1 Q0 d3 1 3.0 sys
q1 Q0 d1 2 2.0 sys
q1 Q0 d5 3 1.5 sys
q1 Q0 d2 4 1.0 sys
q2 Q0 d4 1 1.0 sys
q2 Q0 d7 2 1.0 sys
q9 Q0 d1 1 5.0 sys
"""


def test_hand_computed_values() -> None:
    """Evaluated queries: q1, q2, q4 (q3 has no relevant document; q9 is not judged).

    q1 ranks d3 (rel 0), d1 (2), d5 (-), d2 (1). At k = 2: recall 1/2; first relevant at rank 2, RR 1/2;
    DCG = 2/log2(3), IDCG = 2/log2(2) + 1/log2(3), nDCG = (2/log2 3) / (2 + 1/log2 3).
    q2: d4 and d7 tie at 1.0 and trec_eval breaks ties by document id in reverse, so d7 comes first; at k = 2
    recall 1, RR 1/2, nDCG = (1/log2 3) / 1. q4 is not in the run: 0 everywhere.
    """
    scores = retrieval_scores(parse_run(RUN), parse_qrels(QRELS), ks=[2])
    log3 = math.log2(3)
    assert scores["recall@2"] == {"q1": 0.5, "q2": 1.0, "q4": 0.0}
    assert scores["mrr@2"] == {"q1": 0.5, "q2": 0.5, "q4": 0.0}
    assert scores["ndcg@2"]["q1"] == pytest.approx((2 / log3) / (2 + 1 / log3), abs=1e-15)
    assert scores["ndcg@2"]["q2"] == pytest.approx(1 / log3, abs=1e-15)
    means = evaluate_run(parse_run(RUN), parse_qrels(QRELS), ks=[2])
    assert means["recall@2"] == 0.5
    assert means["mrr@2"] == pytest.approx(1 / 3, abs=1e-15)


def test_deeper_cutoff() -> None:
    """k = 4 for q1: both relevant documents retrieved (recall 1); DCG adds 1/log2(5) for d2 at rank 4.
    k = 1 for q2: d7 first, not relevant: recall 0, RR 0, nDCG 0."""
    scores = retrieval_scores(parse_run(RUN), parse_qrels(QRELS), ks=[1, 4])
    log3, log5 = math.log2(3), math.log2(5)
    assert scores["recall@4"]["q1"] == 1.0
    assert scores["ndcg@4"]["q1"] == pytest.approx((2 / log3 + 1 / log5) / (2 + 1 / log3), abs=1e-15)
    assert (scores["recall@1"]["q2"], scores["mrr@1"]["q2"], scores["ndcg@1"]["q2"]) == (0.0, 0.0, 0.0)


def test_ties_break_by_document_id_in_reverse() -> None:
    assert rank({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 Q0 d1 1 0.5 sys\nq1 Q0 d2 1\n", r"run.txt:2: expected 6 columns"),
        ("q1 Q0 d1 1 high sys\n", r"run.txt:1: score 'high' is not a number"),
        (
            "q1 Q0 d1 1 0.5 sys\nq1 Q0 d1 2 0.4 sys\n",
            r"run.txt:2: document 'd1' appears twice for query 'q1'",
        ),
    ],
)
def test_bad_run_lines(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_run(text, "run.txt")


def test_bad_qrels_lines() -> None:
    with pytest.raises(DataError, match=r"qrels.txt:1: relevance 'yes' is not an integer"):
        parse_qrels("q1 0 d1 yes\n", "qrels.txt")
    with pytest.raises(DataError, match="judge no document relevant"):
        retrieval_scores({}, parse_qrels("q1 0 d1 0\n"))
    with pytest.raises(ConfigError, match="--k"):
        retrieval_scores({}, parse_qrels(QRELS), ks=[0])
