"""Evaluation metrics as pure functions on strings (no torch): ROUGE, BLEU, chrF, accuracy, SQuAD exact match
and token F1, and retrieval metrics on TREC runs. Perplexity needs a model and lives in
`llmlab.evaluation.metrics.perplexity`, which this package does not import.

Each module's docstring gives the definition, the reference implementation it matches and its parity test.
The corpus functions named like their module (`rouge.rouge`, `accuracy.accuracy`, `exact_match.exact_match`,
`f1.f1`) are imported from the module, so that `llmlab.evaluation.metrics.rouge` stays the module.
"""

from llmlab.evaluation.metrics.accuracy import accuracy_scores, is_correct
from llmlab.evaluation.metrics.bleu import BleuConfig, BleuScore, bleu_statistics, corpus_bleu, sentence_bleu
from llmlab.evaluation.metrics.chrf import ChrfConfig, ChrfScore, chrf_statistics, corpus_chrf, sentence_chrf
from llmlab.evaluation.metrics.exact_match import exact_match_scores, normalize_answer
from llmlab.evaluation.metrics.f1 import f1_scores, token_f1
from llmlab.evaluation.metrics.retrieval import evaluate_run, parse_qrels, parse_run, retrieval_scores
from llmlab.evaluation.metrics.rouge import ROUGE_TYPES, RougeScore, mean_rouge, rouge_score

__all__ = [
    "ROUGE_TYPES",
    "BleuConfig",
    "BleuScore",
    "ChrfConfig",
    "ChrfScore",
    "RougeScore",
    "accuracy_scores",
    "bleu_statistics",
    "chrf_statistics",
    "corpus_bleu",
    "corpus_chrf",
    "evaluate_run",
    "exact_match_scores",
    "f1_scores",
    "is_correct",
    "mean_rouge",
    "normalize_answer",
    "parse_qrels",
    "parse_run",
    "retrieval_scores",
    "rouge_score",
    "sentence_bleu",
    "sentence_chrf",
    "token_f1",
]
