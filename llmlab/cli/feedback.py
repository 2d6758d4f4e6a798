"""`llmlab feedback generate | rank | pairs`: completions to rank, a terminal UI to rank them, and the pairs.

    generate  prompts.jsonl -> completions.jsonl   N sampled completions per prompt (seeded, resumable)
    rank      completions.jsonl -> ranked.jsonl    a person orders them (terminal UI; saves after every
                                                   prompt, resumes), or a scripted stand-in (--ranker)
    pairs     ranked.jsonl -> pairs.jsonl          N(N-1)/2 preference pairs per prompt, preferred first

The file formats are in llmlab/rlhf/records.py; the pair rules (ties, identical texts) in
llmlab/rlhf/preferences.py. torch is imported only by `generate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.cli.args import add_config_arguments, build_config, field_docs
from llmlab.cli.output import console, err_console

if TYPE_CHECKING:
    from llmlab.rlhf.preferences import Ranking
    from llmlab.rlhf.records import CompletionSet

_GEN_SKIP = ("stop_token_ids", "ignore_eos", "logprobs")


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "feedback",
        help="human feedback: generate completions, rank them, turn rankings into preference pairs",
        description="Collect human feedback for alignment: `generate` samples N completions per prompt, "
        "`rank` shows them to a person who orders them (or applies a scripted stand-in), `pairs` turns each "
        "ranking into N(N-1)/2 preference pairs for a reward model or DPO.",
    )
    sub = group.add_subparsers(dest="feedback_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _: group.print_help())
    _register_generate(sub)
    _register_rank(sub)
    _register_pairs(sub)


def _register_generate(sub: Any) -> None:
    from llmlab.cli.session import add_model_arguments
    from llmlab.generation.config import GenerationConfig
    from llmlab.rlhf.completions import CompletionsConfig

    gen = sub.add_parser(
        "generate",
        help="sample N completions per prompt (to be ranked)",
        description='Sample N completions for every prompt of a JSONL file ({"prompt": ...} a line) and '
        'write {"prompt", "completions"} a line. Chat models get each prompt through their chat template. '
        "Sampling is seeded (--seed, default 0): prompt k uses seeds seed+k*n ... seed+k*n+n-1. The output is "
        "saved after every prompt; running the same command again continues where it stopped.",
    )
    gen.add_argument("--prompts", required=True, metavar="FILE.jsonl", help='prompts, {"prompt": ...} a line')
    gen.add_argument("--out", required=True, metavar="FILE.jsonl", help="where to write the completions")
    docs = field_docs(CompletionsConfig)
    gen.add_argument("-n", type=int, default=4, help=docs["n"] + " (default: 4)")
    gen.add_argument("--chat", action=argparse.BooleanOptionalAction, default=True, help=docs["chat"])
    gen.add_argument("--system", help=docs["system"])
    gen.add_argument(
        "--quiet", action="store_true", help="do not print each prompt's completions (one line each)"
    )
    add_model_arguments(gen)
    gen.add_argument(
        "--adapter",
        metavar="DIR",
        help="sample from the model with this LoRA adapter merged in (a training run or adapter folder), e.g. "
        "the aligned policy of `align dpo`, to sample it again or measure it",
    )
    add_config_arguments(gen, GenerationConfig, skip=_GEN_SKIP)
    gen.add_argument(
        "--config", metavar="FILE.yaml", help="decoding settings from a YAML file (flags override)"
    )
    gen.set_defaults(func=run_generate)


def _register_rank(sub: Any) -> None:
    rank = sub.add_parser(
        "rank",
        help="rank each prompt's completions in the terminal (or with a scripted ranker)",
        description="Show each prompt with its completions and type their ranks, 1 = best, in the "
        "completions' order: `2 1 3` means completion 2 is best, then 1, then 3. Equal ranks are ties (no pair). "
        "The file is saved after every prompt; q (or Ctrl-D) stops, and the same command continues later. "
        "--ranker applies a scripted rule instead of a person (a stand-in for tests and demos, labelled as "
        "such in the file): shortest, longest, contains:WORD.",
    )
    rank.add_argument("completions", metavar="COMPLETIONS.jsonl", help='{"prompt", "completions"} a line')
    rank.add_argument("--out", required=True, metavar="FILE.jsonl", help="where to write the rankings")
    rank.add_argument("--criterion", help='what to judge, shown to the ranker and saved, e.g. "helpfulness"')
    rank.add_argument(
        "--ranker",
        metavar="NAME",
        help="scripted stand-in for people: shortest, longest, contains:WORD, reference:FILE or f1:FILE",
    )
    _add_ties(rank)
    rank.set_defaults(func=run_rank)


def _register_pairs(sub: Any) -> None:
    pairs = sub.add_parser(
        "pairs",
        help="turn rankings into preference pairs (preferred completion first)",
        description='Each prompt with N ranked completions gives N(N-1)/2 pairs {"prompt", "chosen", '
        '"rejected"}: every two completions are compared, the better-ranked one is `chosen`. Pairs are '
        "written in the completions' order (1-2, 1-3, ..., 2-3, ...). Tied completions and identical texts "
        "make no pair.",
    )
    pairs.add_argument("ranked", metavar="RANKED.jsonl", help='{"prompt", "completions", "ranks"} a line')
    pairs.add_argument(
        "--out", required=True, metavar="FILE.jsonl", help='where to write the pairs; "-" prints them'
    )
    pairs.add_argument(
        "--per-prompt",
        type=int,
        default=0,
        metavar="K",
        help="keep at most K pairs per prompt, those whose ranks differ most (best against worst first); "
        "0 keeps every pair (default)",
    )
    _add_ties(pairs)
    pairs.set_defaults(func=run_pairs)


def _add_ties(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ties",
        choices=["skip", "error"],
        default="skip",
        help="equal ranks: skip (tied completions make no pair; default) or error (every rank must differ)",
    )


def run_generate(args: argparse.Namespace) -> int:
    from llmlab.cli.session import load_engine
    from llmlab.errors import ConfigError
    from llmlab.generation.config import GenerationConfig
    from llmlab.rlhf.completions import CompletionsConfig, check_prefix, sample_completions
    from llmlab.rlhf.records import read_completion_sets, read_prompts, write_jsonl

    generation = build_config(GenerationConfig, args, args.config)
    config = CompletionsConfig(n=args.n, chat=args.chat, system=args.system)
    if generation.sampling().is_greedy:
        raise ConfigError(
            "--greedy (or --temperature 0) would give the same completion n times, and identical completions "
            "make no preference pair; sample with --temperature above 0 (e.g. 0.9)"
        )
    prompts = read_prompts(args.prompts)
    out = Path(args.out)
    done = read_completion_sets(out) if out.is_file() and out.stat().st_size else []
    check_prefix(done, prompts, config.n, args.out)
    seed = 0 if generation.seed is None else generation.seed
    if len(done) == len(prompts):
        console.print(f"all {len(prompts)} prompts already have completions in {args.out}; nothing to do")
        return 0
    if done:
        err_console.print(f"resuming: {len(done)} of {len(prompts)} prompts already in {args.out}")
    loaded, engine = load_engine(args, merge=True)
    records = [d.to_record() for d in done]
    with _progress() as progress:
        task = progress.add_task("sampling", total=len(prompts), completed=len(done))
        for found in sample_completions(engine, loaded.tokenizer, prompts, config, generation, len(done)):
            records.append(found.to_record())
            write_jsonl(out, records)
            progress.advance(task)
            if not args.quiet:
                _preview(len(records), found)
    console.print(f"{len(prompts)} prompts, {config.n} completions each (seed {seed}), written to {args.out}")
    return 0


def _preview(number: int, found: CompletionSet) -> None:
    """The prompt and each completion on one line (the file has the full text)."""
    width = max(console.width - 8, 20)
    console.print(f"{number}. {_short(found.prompt, width)}", soft_wrap=True)
    for i, text in enumerate(found.completions, start=1):
        console.print(f"   {i}: {_short(text, width)}", soft_wrap=True)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    )  # fmt: skip


def run_rank(args: argparse.Namespace) -> int:
    from llmlab.rlhf.records import check_resume, read_completion_sets, read_rankings

    sets = read_completion_sets(args.completions)
    out = Path(args.out)
    done = read_rankings(out, allow_empty=True) if out.is_file() else []
    check_resume(done, sets, args.out)
    if args.ranker:
        return _rank_scripted(args, sets, done)
    from llmlab.cli.feedback_rank import RankSession

    return RankSession(sets, done, args.out, args.criterion, args.ties).run()


def _check_same_ranker(done: list[Ranking], ranker: str, criterion: str | None, out: str) -> None:
    from llmlab.cli.feedback_rank import who
    from llmlab.errors import DataError

    for record in done:
        if record.ranker != ranker or record.criterion != criterion:
            raise DataError(
                f"this record was ranked {who(record.ranker, record.criterion)}, not {who(ranker, criterion)}; "
                f"continue {out} with the same settings, or choose another --out",
                record.where,
            )


def _rank_scripted(args: argparse.Namespace, sets: list[CompletionSet], done: list[Ranking]) -> int:
    from llmlab.rlhf.preferences import Ranking, describe_order, validate_ranks
    from llmlab.rlhf.rankers import make_ranker
    from llmlab.rlhf.records import ranking_record, write_jsonl

    rank, rule = make_ranker(args.ranker)
    label = f"scripted:{args.ranker}"
    _check_same_ranker(done, label, args.criterion, args.out)
    rankings = list(done)
    for found in sets[len(done) :]:
        ranks = validate_ranks(
            rank(found.prompt, found.completions), len(found.completions), found.where, args.ties
        )
        rankings.append(Ranking(found.prompt, found.completions, ranks, args.criterion, label))
    write_jsonl(args.out, [ranking_record(r) for r in rankings])
    console.print(f"scripted ranker {args.ranker!r}, a stand-in for people: {rule}")
    for number, ranking in enumerate(rankings, start=1):
        console.print(f"{number}. {_short(ranking.prompt)}  best first: {describe_order(ranking.ranks)}")
    console.print(f"{len(rankings)} prompts ranked, saved in {args.out}")
    return 0


def _short(text: str, width: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def run_pairs(args: argparse.Namespace) -> int:
    import json

    from llmlab.rlhf.preferences import rankings_to_pairs
    from llmlab.rlhf.records import read_rankings, write_jsonl

    rankings = read_rankings(args.ranked)
    pairs, stats = rankings_to_pairs(rankings, args.ties, args.per_prompt)
    left_out = f"{stats.tied} tied and {stats.identical} identical comparisons left out"
    if stats.capped:
        left_out += f", {stats.capped} pairs beyond --per-prompt {args.per_prompt}"
    summary = f"{stats.rankings} rankings -> {stats.pairs} pairs ({left_out})"
    if args.out == "-":
        for pair in pairs:
            sys.stdout.write(json.dumps(pair.to_record(), ensure_ascii=False) + "\n")
        err_console.print(summary)
        return 0
    write_jsonl(args.out, [p.to_record() for p in pairs])
    console.print(f"{summary}, written to {args.out}")
    return 0
