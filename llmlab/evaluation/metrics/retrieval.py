"""Retrieval metrics on TREC run and qrels files: recall@k, MRR@k, nDCG@k.

For one query, with the run's documents ranked and rel(d) the judged relevance (0 or absent: not relevant):

    recall@k = |relevant documents in the top k| / |relevant documents|
    MRR@k    = 1 / rank of the first relevant document in the top k (0 if there is none); averaged: MRR
    nDCG@k   = DCG@k / IDCG@k,   DCG@k = sum over ranks i <= k of rel(d_i) / log2(i + 1),
               IDCG@k = the DCG@k of the judged documents sorted by relevance (Järvelin & Kekäläinen, 2002)

Each metric is averaged over the queries of the qrels that have at least one relevant document; a query the
run does not answer scores 0 (trec_eval's `-c`), and run queries without judgements are ignored. As in
trec_eval, the rank column of a run is ignored: documents are ordered by score, highest first, ties broken by
document id in reverse order; gains are the relevance levels (`ndcg_cut`).

Formats (whitespace-separated, one line each): run `query_id Q0 doc_id rank score tag`, qrels
`query_id iteration doc_id relevance`.

Hand-derived cases: tests/evaluation/test_retrieval_metrics.py
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmlab.errors import ConfigError, DataError

Run = dict[str, dict[str, float]]
"""query id -> document id -> score."""
Qrels = dict[str, dict[str, int]]
"""query id -> document id -> relevance level."""


def _fields(line: str, count: int, where: str, layout: str) -> list[str] | None:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    if len(fields) != count:
        raise DataError(f"expected {count} columns ({layout}), found {len(fields)}: {line.strip()!r}", where)
    return fields


def parse_run(text: str, source: str = "run") -> Run:
    """Parse a TREC run (`query_id Q0 doc_id rank score tag` per line); `source` names it in errors."""
    run: Run = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        fields = _fields(line, 6, where, "query_id Q0 doc_id rank score tag")
        if fields is None:
            continue
        qid, _, doc, _, score, _ = fields
        try:
            value = float(score)
        except ValueError:
            raise DataError(f"score {score!r} is not a number", where) from None
        if math.isnan(value):
            raise DataError("score is NaN; give every document a number", where)
        docs = run.setdefault(qid, {})
        if doc in docs:
            raise DataError(
                f"document {doc!r} appears twice for query {qid!r}; keep one line per pair", where
            )
        docs[doc] = value
    return run


def parse_qrels(text: str, source: str = "qrels") -> Qrels:
    """Parse TREC qrels (`query_id iteration doc_id relevance` per line); `source` names it in errors."""
    qrels: Qrels = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        fields = _fields(line, 4, where, "query_id iteration doc_id relevance")
        if fields is None:
            continue
        qid, _, doc, rel = fields
        try:
            level = int(rel)
        except ValueError:
            raise DataError(f"relevance {rel!r} is not an integer", where) from None
        judged = qrels.setdefault(qid, {})
        if doc in judged:
            raise DataError(
                f"document {doc!r} is judged twice for query {qid!r}; keep one line per pair", where
            )
        judged[doc] = level
    return qrels


def rank(scores: dict[str, float]) -> list[str]:
    """Document ids by score, highest first; ties by document id, reverse order (trec_eval)."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def recall_at_k(ranking: Sequence[str], judgements: dict[str, int], k: int) -> float:
    relevant = {d for d, rel in judgements.items() if rel > 0}
    return sum(1 for d in ranking[:k] if d in relevant) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], judgements: dict[str, int], k: int) -> float:
    for i, d in enumerate(ranking[:k], 1):
        if judgements.get(d, 0) > 0:
            return 1 / i
    return 0.0


def ndcg_at_k(ranking: Sequence[str], judgements: dict[str, int], k: int) -> float:
    dcg = sum(max(judgements.get(d, 0), 0) / math.log2(i + 1) for i, d in enumerate(ranking[:k], 1))
    ideal = sorted((rel for rel in judgements.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 1) for i, rel in enumerate(ideal, 1))
    return dcg / idcg


def retrieval_scores(run: Run, qrels: Qrels, ks: Sequence[int] = (10,)) -> dict[str, dict[str, float]]:
    """Per query (those with a relevant document, sorted by id): recall@k, mrr@k and ndcg@k for each k.

    Returns:
        metric name (e.g. "ndcg@10") -> query id -> value.
    """
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"--k must be one or more positive cutoffs, got {list(ks)}")
    queries = sorted(q for q, judged in qrels.items() if any(rel > 0 for rel in judged.values()))
    if not queries:
        raise DataError("the qrels judge no document relevant (relevance > 0); nothing to evaluate")
    scores: dict[str, dict[str, float]] = {}
    for k in ks:
        for name in (f"recall@{k}", f"mrr@{k}", f"ndcg@{k}"):
            scores[name] = {}
        for q in queries:
            ranking = rank(run.get(q, {}))
            scores[f"recall@{k}"][q] = recall_at_k(ranking, qrels[q], k)
            scores[f"mrr@{k}"][q] = reciprocal_rank(ranking, qrels[q], k)
            scores[f"ndcg@{k}"][q] = ndcg_at_k(ranking, qrels[q], k)
    return scores


def evaluate_run(run: Run, qrels: Qrels, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """Each metric averaged over the evaluated queries."""
    return {name: sum(v.values()) / len(v) for name, v in retrieval_scores(run, qrels, ks).items()}
