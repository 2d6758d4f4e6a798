"""`llmlab eval`: the evaluation verb group.

`eval metric NAME` scores prediction files against reference files (rouge, bleu, chrf, accuracy, exact-match,
f1), a model on a text corpus (perplexity) or a TREC run against qrels (retrieval), as a table or `--json`,
with `--bootstrap N` percentile confidence intervals. `eval run` and `eval compare` (the harness) are added to
the same group by `llmlab.cli.evaluate_run.register_run`; another sub-command group joins the same way, by a
function that receives the `eval` sub-parsers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmlab.cli.args import add_config_arguments, build_config

ROUGE_HELP = (
    "ROUGE (Lin, 2004), equal to Google's rouge-score package. ROUGE-N recall = matching n-grams / n-grams in "
    "the reference, precision = matching n-grams / n-grams in the output, F1 = 2PR / (P + R) (ROUGE-1: "
    "unigrams); ROUGE-L uses the longest common subsequence, ROUGE-Lsum the summary-level LCS over sentences "
    "(one per line: use .jsonl files to keep newlines inside a text). With several references each type takes "
    "the best one. The corpus score is the mean over items, in [0, 1]."
)
BLEU_HELP = (
    "Corpus BLEU (Papineni et al., 2002), equal to sacreBLEU: the geometric mean of the n-gram precisions over "
    "n = 1..4 times the brevity penalty, exp(1 - r/c) when the output length c is below the reference length "
    "r. Counts are summed over the corpus before dividing. Tokenizer 13a by default; 0-100 scale; the "
    "signature records the settings."
)
CHRF_HELP = (
    "chrF (Popović, 2015), equal to sacreBLEU: the F-score (beta = 2, recall weighted more) of character "
    "n-gram precision and recall averaged over n = 1..6, with statistics summed over the corpus; "
    "--word-order 2 gives chrF++. 0-100 scale."
)
ACCURACY_HELP = (
    "accuracy = correct / total: a prediction is correct when, stripped of surrounding whitespace, it equals "
    "one of its references. In [0, 1]."
)
EM_HELP = (
    "SQuAD v1.1 exact match: 1 when the normalised prediction equals a normalised reference (lowercase, no "
    "punctuation, no articles a/an/the, single spaces), else 0; the mean over items, in [0, 1]."
)
F1_HELP = (
    "SQuAD v1.1 token F1: over the normalised tokens, precision = common tokens / prediction tokens, recall = "
    "common tokens / reference tokens, F1 = 2PR / (P + R); the best reference per item; the mean over items."
)
PERPLEXITY_HELP = (
    "Perplexity = exp(mean negative log-likelihood per predicted token) of a causal model over every token of "
    "a corpus of {'text': ...} JSONL records; long texts use a sliding window."
)
RETRIEVAL_HELP = (
    "Retrieval metrics of a TREC run (query Q0 doc rank score tag) against TREC qrels (query 0 doc relevance): "
    "recall@k = relevant documents in the top k / relevant documents; MRR@k = 1 / rank of the first relevant "
    "document in the top k (0 if none); nDCG@k = DCG / ideal DCG with gain = relevance and discount log2(rank "
    "+ 1). Averaged over the judged queries; a query missing from the run scores 0."
)
FILES_HELP = (
    " Files: one item per line; a .jsonl file holds one JSON string per line, and for --references an array of "
    "strings gives an item several references. Repeat --references for several reference files."
)


@dataclass
class Report:
    """What a metric command prints: a table and the same numbers as JSON."""

    metric: str
    items: int
    columns: list[str]
    rows: dict[str, list[float]]
    """Row name -> one value per column."""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Row name -> bootstrap interval of its last column."""
    notes: dict[str, Any] = field(default_factory=dict)
    unit: str = "items"
    """What `items` counts, in the table title."""


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "eval",
        help="evaluate: metrics on files, models on tasks, runs side by side",
        description="Evaluation: `eval metric` scores files with one metric; `eval run` evaluates a model on "
        "a task; `eval compare` compares runs.",
    )
    commands = group.add_subparsers(dest="eval_command", metavar="COMMAND")
    group.set_defaults(func=lambda _args: group.print_help() or 0)
    register_metric(commands)
    from llmlab.cli.evaluate_run import register_run

    register_run(commands)


def register_metric(commands: Any) -> None:
    """Add `metric` and one sub-command per metric to the `eval` group."""
    from llmlab.evaluation.metrics.bleu import BleuConfig
    from llmlab.evaluation.metrics.chrf import ChrfConfig

    metric = commands.add_parser(
        "metric",
        help="score predictions against references with one metric (ROUGE, BLEU, chrF, accuracy, ...)",
        description="Score a file of predictions against references, a model on a corpus (perplexity) or a "
        "TREC run (retrieval). Add --bootstrap N for confidence intervals and --json for machine output.",
    )
    names = metric.add_subparsers(dest="metric", metavar="METRIC")
    metric.set_defaults(func=lambda _args: metric.print_help() or 0)
    rouge = _pair_parser(names, "rouge", ROUGE_HELP, run_rouge)
    rouge.add_argument(
        "--types", default="rouge1,rouge2,rougeL,rougeLsum", help="comma-separated ROUGE types"
    )
    rouge.add_argument("--stem", action="store_true", help="Porter-stem words of more than three letters")
    bleu = _pair_parser(names, "bleu", BLEU_HELP, run_bleu)
    add_config_arguments(bleu, BleuConfig)
    bleu.add_argument("--config", metavar="FILE.yaml", help="BLEU settings from a YAML file (flags override)")
    chrf = _pair_parser(names, "chrf", CHRF_HELP, run_chrf)
    add_config_arguments(chrf, ChrfConfig)
    chrf.add_argument("--config", metavar="FILE.yaml", help="chrF settings from a YAML file (flags override)")
    accuracy = _pair_parser(names, "accuracy", ACCURACY_HELP, run_accuracy)
    accuracy.add_argument("--ignore-case", action="store_true", help="compare case-insensitively")
    _pair_parser(names, "exact-match", EM_HELP, run_exact_match)
    _pair_parser(names, "f1", F1_HELP, run_f1)
    _add_perplexity(names)
    _add_retrieval(names)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="resamples for confidence intervals"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default: 0.95)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")


def _pair_parser(
    names: Any, name: str, help_text: str, handler: Callable[..., int]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = names.add_parser(
        name, help=help_text.split(". ")[0].split(" (")[0], description=help_text + FILES_HELP
    )
    parser.add_argument("--predictions", required=True, metavar="FILE", help="one prediction per line")
    parser.add_argument(
        "--references", required=True, action="append", metavar="FILE", help="references, one item per line"
    )
    _common(parser)
    parser.set_defaults(func=handler)
    return parser


def _add_perplexity(names: Any) -> None:
    parser = names.add_parser(
        "perplexity", help="perplexity of a model on a text corpus", description=PERPLEXITY_HELP
    )
    parser.add_argument("--model", required=True, help="registry name, checkpoint folder or GGUF file")
    parser.add_argument(
        "--data", required=True, metavar="FILE.jsonl", help='records {"text": ...}, one a line'
    )
    parser.add_argument(
        "--max-length", type=int, help="longest window in tokens (default: the model's, <= 1024)"
    )
    parser.add_argument("--stride", type=int, help="tokens each window predicts (default: max-length - 1)")
    parser.add_argument("--no-bos", action="store_true", help="do not start texts with the BOS token")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default: float32)")
    _common(parser)
    parser.set_defaults(func=run_perplexity)


def _add_retrieval(names: Any) -> None:
    parser = names.add_parser(
        "retrieval", help="recall@k, MRR@k and nDCG@k of a TREC run", description=RETRIEVAL_HELP
    )
    parser.add_argument("--run", required=True, metavar="FILE", help="TREC run: query Q0 doc rank score tag")
    parser.add_argument("--qrels", required=True, metavar="FILE", help="TREC qrels: query 0 doc relevance")
    parser.add_argument("--k", type=int, action="append", help="cutoff, repeatable (default: 10)")
    _common(parser)
    parser.set_defaults(func=run_retrieval)


def _read(args: argparse.Namespace) -> tuple[list[str], list[list[str]]]:
    from llmlab.evaluation.bootstrap import check_bootstrap
    from llmlab.evaluation.metrics.inputs import read_pairs

    if args.bootstrap:
        check_bootstrap(args.bootstrap, args.confidence)
    return read_pairs(args.predictions, args.references)


def _mean_intervals(
    args: argparse.Namespace, values: dict[str, list[float]]
) -> dict[str, tuple[float, float]]:
    from llmlab.evaluation.bootstrap import mean_interval

    if not args.bootstrap:
        return {}
    out = {}
    for name, v in values.items():
        interval = mean_interval(v, args.bootstrap, args.seed, args.confidence)
        out[name] = (interval.low, interval.high)
    return out


def run_rouge(args: argparse.Namespace) -> int:
    from llmlab.evaluation.metrics.rouge import check_types, mean_rouge, rouge

    types = check_types([t.strip() for t in args.types.split(",") if t.strip()])
    preds, refs = _read(args)
    scores = rouge(preds, refs, types, stem=args.stem)
    means = mean_rouge(scores)
    rows = {t: [s.precision, s.recall, s.fmeasure] for t, s in means.items()}
    intervals = _mean_intervals(args, {t: [s[t].fmeasure for s in scores] for t in types})
    notes = {"stemmer": "porter" if args.stem else "none"}
    return _show(args, Report("rouge", len(preds), ["precision", "recall", "f1"], rows, intervals, notes))


def _corpus_intervals(
    args: argparse.Namespace, name: str, stats: Any, score: Callable[[list[float]], float]
) -> dict[str, tuple[float, float]]:
    from llmlab.evaluation.bootstrap import bootstrap_interval

    if not args.bootstrap:
        return {}
    interval = bootstrap_interval(
        stats, lambda s: score(s.tolist()), args.bootstrap, args.seed, args.confidence
    )
    return {name: (interval.low, interval.high)}


def run_bleu(args: argparse.Namespace) -> int:
    from llmlab.evaluation.metrics.bleu import (
        BleuConfig,
        bleu_from_statistics,
        bleu_signature,
        bleu_statistics,
        count_references,
    )

    config = build_config(BleuConfig, args, args.config)
    preds, refs = _read(args)
    stats = bleu_statistics(preds, refs, config)
    result = bleu_from_statistics(stats.sum(axis=0).tolist(), config)
    intervals = _corpus_intervals(args, "bleu", stats, lambda s: bleu_from_statistics(s, config).score)
    boot = (args.bootstrap, args.seed) if args.bootstrap else None
    notes = {
        "signature": bleu_signature(config, count_references(refs), boot),
        "precisions": [round(p, 4) for p in result.precisions],
        "brevity_penalty": result.bp,
        "output_length": result.sys_len,
        "reference_length": result.ref_len,
    }
    return _show(args, Report("bleu", len(preds), ["score"], {"bleu": [result.score]}, intervals, notes))


def run_chrf(args: argparse.Namespace) -> int:
    from llmlab.evaluation.metrics.bleu import count_references
    from llmlab.evaluation.metrics.chrf import (
        ChrfConfig,
        chrf_from_statistics,
        chrf_name,
        chrf_signature,
        chrf_statistics,
    )

    config = build_config(ChrfConfig, args, args.config)
    preds, refs = _read(args)
    stats = chrf_statistics(preds, refs, config)
    name = chrf_name(config)
    score = chrf_from_statistics(stats.sum(axis=0).tolist(), config)
    intervals = _corpus_intervals(args, name, stats, lambda s: chrf_from_statistics(s, config))
    boot = (args.bootstrap, args.seed) if args.bootstrap else None
    notes = {"signature": chrf_signature(config, count_references(refs), boot)}
    return _show(args, Report("chrf", len(preds), ["score"], {name: [score]}, intervals, notes))


def _mean_report(args: argparse.Namespace, metric: str, values: list[float]) -> int:
    intervals = _mean_intervals(args, {metric: values})
    return _show(
        args, Report(metric, len(values), ["score"], {metric: [sum(values) / len(values)]}, intervals)
    )


def run_accuracy(args: argparse.Namespace) -> int:
    from llmlab.evaluation.metrics.accuracy import accuracy_scores

    preds, refs = _read(args)
    return _mean_report(args, "accuracy", accuracy_scores(preds, refs, args.ignore_case))


def run_exact_match(args: argparse.Namespace) -> int:
    from llmlab.evaluation.metrics.exact_match import exact_match_scores

    preds, refs = _read(args)
    return _mean_report(args, "exact_match", exact_match_scores(preds, refs))


def run_f1(args: argparse.Namespace) -> int:
    from llmlab.evaluation.metrics.f1 import f1_scores

    preds, refs = _read(args)
    return _mean_report(args, "f1", f1_scores(preds, refs))


def run_perplexity(args: argparse.Namespace) -> int:
    from llmlab.cli.output import err_console
    from llmlab.evaluation.bootstrap import bootstrap_interval, check_bootstrap
    from llmlab.evaluation.metrics.inputs import read_text_records
    from llmlab.evaluation.metrics.perplexity import PerplexityConfig, perplexity, perplexity_from_statistics
    from llmlab.models import load_model

    config = PerplexityConfig(args.max_length, args.stride, not args.no_bos)
    if args.bootstrap:
        check_bootstrap(args.bootstrap, args.confidence)
    texts = read_text_records(args.data)
    with err_console.status(f"loading {args.model}"):
        loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    with err_console.status(f"scoring {len(texts)} texts"):
        result = perplexity(loaded.model, loaded.tokenizer, texts, config)
    intervals = {}
    if args.bootstrap:
        stats = list(zip(result.text_nll, result.text_tokens, strict=True))
        interval = bootstrap_interval(
            stats,
            lambda s: perplexity_from_statistics(s[0], s[1]),
            args.bootstrap,
            args.seed,
            args.confidence,
        )
        intervals["perplexity"] = (interval.low, interval.high)
    notes = {"model": loaded.name, "tokens": result.tokens, "mean_nll": result.nll}
    rows = {"perplexity": [result.perplexity]}
    return _show(args, Report("perplexity", len(texts), ["score"], rows, intervals, notes, "texts"))


def run_retrieval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmlab.errors import DataError
    from llmlab.evaluation.bootstrap import check_bootstrap
    from llmlab.evaluation.metrics.retrieval import parse_qrels, parse_run, retrieval_scores

    if args.bootstrap:
        check_bootstrap(args.bootstrap, args.confidence)
    texts = {}
    for flag, path in (("--run", args.run), ("--qrels", args.qrels)):
        try:
            texts[flag] = Path(path).read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as e:
            raise DataError(f"{flag} {path}: cannot read it as UTF-8 text ({type(e).__name__})") from None
    run = parse_run(texts["--run"], args.run)
    qrels = parse_qrels(texts["--qrels"], args.qrels)
    per_query = retrieval_scores(run, qrels, args.k or [10])
    values = {name: list(v.values()) for name, v in per_query.items()}
    rows = {name: [sum(v) / len(v)] for name, v in values.items()}
    items = len(next(iter(values.values())))
    notes = {"unjudged_run_queries": len(set(run) - set(qrels))}
    intervals = _mean_intervals(args, values)
    return _show(args, Report("retrieval", items, ["score"], rows, intervals, notes, "queries"))


def _show(args: argparse.Namespace, report: Report) -> int:
    from llmlab.cli.output import console, print_json, print_table

    if args.json:
        data: dict[str, Any] = {"metric": report.metric, "items": report.items}
        data["scores"] = {
            row: dict(zip(report.columns, values, strict=True)) for row, values in report.rows.items()
        }
        if report.intervals:
            data["bootstrap"] = {
                "resamples": args.bootstrap, "seed": args.seed, "confidence": args.confidence,
                "intervals": {row: list(bounds) for row, bounds in report.intervals.items()},
            }  # fmt: skip
        print_json(data | report.notes)
        return 0
    columns = ["metric", *report.columns]
    if report.intervals:
        columns += [f"{args.confidence:.0%} CI low", "high"]
    rows = []
    for name, values in report.rows.items():
        bounds = report.intervals.get(name)
        rows.append([name, *values, *(bounds if bounds else ([None, None] if report.intervals else []))])
    print_table(f"{report.metric} ({report.items} {report.unit})", columns, rows)
    for key, value in report.notes.items():
        console.print(f"[dim]{key}: {value}[/dim]")
    return 0
