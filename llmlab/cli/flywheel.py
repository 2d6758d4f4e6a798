"""`llmlab flywheel run | prompts | measure | client`: the whole loop in one run folder (docs/flywheel.md).

run      every step in order, skipping finished ones: split, ingest, ask, generate, rank, pairs, reward,
         dpo, (ppo), eval, serve, report
prompts  the `ask` step: RAG answers for every question and the grounded prompts of the later steps
measure  base vs aligned on the held-out questions, with paired intervals (part of the `eval` step)
client   the `serve` step: serve the adapter and ask one held-out question through the OpenAI client
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from llmlab.cli.args import add_config_arguments, build_config


def register(subparsers: Any) -> None:
    from llmlab.flywheel.run import FlywheelConfig

    group = subparsers.add_parser(
        "flywheel",
        help="the whole loop: documents -> answers -> feedback -> alignment -> evaluation -> serving",
        description="Run the flywheel on the packaged models, offline, into one run folder with a report.md "
        "(docs/flywheel.md). Rerunning skips finished steps.",
    )
    sub = group.add_subparsers(dest="flywheel_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _: group.print_help())
    run = sub.add_parser("run", help="every step in order, skipping finished ones")
    add_config_arguments(run, FlywheelConfig)
    run.add_argument("--until", metavar="STEP", help="stop after this step (e.g. dpo)")
    run.add_argument("--redo", metavar="STEP", help="run this step and every later one again")
    run.add_argument("--config", metavar="FILE.yaml", help="settings from a YAML file (flags override)")
    run.set_defaults(func=run_flywheel_cli)

    prompts = sub.add_parser("prompts", help="ask every question with RAG; write the grounded prompts")
    prompts.add_argument("--store", required=True, help="the store `llmlab rag ingest` wrote")
    prompts.add_argument("--model", default="smollm2-135m-instruct", help="the answering model")
    prompts.add_argument("--train", required=True, metavar="FILE.jsonl", help="train questions")
    prompts.add_argument("--heldout", required=True, metavar="FILE.jsonl", help="held-out questions")
    prompts.add_argument("--max-new-tokens", type=int, default=48, help="most tokens in a RAG answer")
    prompts.add_argument("--out", required=True, metavar="DIR", help="where to write the prompts")
    prompts.set_defaults(func=run_prompts)

    measure = sub.add_parser("measure", help="base vs aligned results of `eval run`, with paired intervals")
    measure.add_argument("base", help="`eval run --output` of the base model")
    measure.add_argument("aligned", help="`eval run --output` of the aligned model")
    measure.add_argument("--reward-model", help="a `reward train` folder: also compare its scores")
    measure.add_argument(
        "--data", help="the held-out `eval run --data` file: the reward model scores its inputs"
    )
    measure.add_argument(
        "--samples",
        nargs=2,
        metavar=("BASE.jsonl", "ALIGNED.jsonl"),
        help="`feedback generate` completions of both models on the held-out prompts: also compare their mean "
        "token F1 and share containing the reference, per question (needs --data)",
    )
    measure.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    measure.add_argument("--out", required=True, metavar="FILE.json", help="where to write the measures")
    measure.set_defaults(func=run_measure)

    client = sub.add_parser(
        "client", help="serve an adapter and ask it one question through the OpenAI client"
    )
    client.add_argument("--model", default="smollm2-135m-instruct", help="the base model")
    client.add_argument("--adapter", required=True, help="the adapter folder to serve")
    client.add_argument("--questions", required=True, metavar="FILE.jsonl", help="its first input is asked")
    client.add_argument("--max-new-tokens", type=int, default=48, help="most tokens in the reply")
    client.add_argument("--out", required=True, metavar="FILE.json", help="where to write the reply")
    client.set_defaults(func=run_client)


def run_flywheel_cli(args: argparse.Namespace) -> int:
    from llmlab.flywheel.run import FlywheelConfig, run_flywheel

    config = build_config(FlywheelConfig, args, args.config)
    start = time.perf_counter()
    run = run_flywheel(config, until=args.until, redo=args.redo, on_event=lambda m: print(m, flush=True))
    report = run / "report.md"
    where = f"; report: {report}" if report.is_file() and args.until in (None, "report") else ""
    print(f"flywheel: {run} in {time.perf_counter() - start:.1f} s{where}")
    measures = run / "10-eval" / "measures.json"
    if measures.is_file() and where:
        result = json.loads(measures.read_text(encoding="utf-8"))
        for name, m in result["measures"].items():
            print(f"  {name}: base {m['base']:.4f}, aligned {m['aligned']:.4f}, "
                  f"delta {m['delta']:+.4f} [{m['low']:+.4f}, {m['high']:+.4f}]")  # fmt: skip
    return 0


def run_prompts(args: argparse.Namespace) -> int:
    from llmlab.flywheel.questions import ask_questions

    counts = ask_questions(args.store, args.model, args.train, args.heldout, args.out, args.max_new_tokens)
    print(f"{counts['train']} train and {counts['heldout']} held-out questions asked; retrieval found a passage "
          f"with the reference answer for {counts['found']}; prompts written to {args.out}")  # fmt: skip
    return 0


def run_measure(args: argparse.Namespace) -> int:
    from llmlab.flywheel.measure import measure, write_measures

    samples = tuple(args.samples) if args.samples else None
    result = measure(args.base, args.aligned, args.reward_model, args.seed, data=args.data, samples=samples)
    write_measures(result, args.out)
    for name, m in result["measures"].items():
        print(f"{name}: base {m['base']:.4f}, aligned {m['aligned']:.4f}, delta {m['delta']:+.4f} "
              f"[{m['low']:+.4f}, {m['high']:+.4f}]")  # fmt: skip
    print(f"{result['items']} held-out items; written to {args.out}")
    return 0


def run_client(args: argparse.Namespace) -> int:
    from llmlab.errors import DataError
    from llmlab.flywheel.client import ask_served, write_reply

    with open(args.questions, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), None)
    if first is None:
        raise DataError(f'{args.questions}: no question to ask; give a JSONL file of {{"input"}} records')
    question = json.loads(first)["input"]
    result = ask_served(args.model, args.adapter, question, args.max_new_tokens)
    write_reply(result, args.out)
    print(f"{result['model']} at {result['url']} ({result['client']} client): {result['reply']}")
    return 0
