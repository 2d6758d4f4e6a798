"""`llmlab demo` (what `make demo` runs): ask llmlab's own user guide a question, offline, with sources.

It is `llmlab ask` with a question the guide answers: the first run builds the guide's store from docs/ and
prepares the packaged chat model (about a minute on a laptop CPU); later runs start in seconds. The demo
answers extractively (`--answer-style extractive`): a free answer from the 135M model depends on the CPU's
kernels (on an AMD EPYC its int8 and bf16 paths refuse the demo question that fp32 answers), while the quote
it copies from the cited block is the same sentence on every path measured. It runs the base model
(`--adapter none`): with the grounded-answer adapter that `rag ask` uses by default, SmolLM2 quotes the wrong
sentence for this question.
"""

from __future__ import annotations

import argparse
from typing import Any

DEMO_QUESTION = "Which environment variable changes the GGUF cache folder?"
"""A question the guide answers in one place (docs/models.md), which SmolLM2-135M answers correctly."""


def register(subparsers: Any) -> None:
    from llmlab.cli.rag import _add_answer_arguments

    demo = subparsers.add_parser(
        "demo",
        help="answer a question about llmlab from its own guide, with sources (offline)",
        description="Retrieval-augmented generation end to end on llmlab's user guide: load, chunk, embed "
        "and store docs/ (first run only), retrieve, answer with the packaged model, cite the sources.",
    )
    demo.add_argument("--question", default=DEMO_QUESTION, help=f"what to ask (default: {DEMO_QUESTION!r})")
    # The base model copying a span: the grounded-answer adapter (rag ask's default) quotes the wrong sentence
    # for the demo's question ("a half-written or corrupted cache"); --adapter auto shows it.
    own = {"answer_style": "extractive", "adapter": "none"}
    _add_answer_arguments(demo, defaults=own)
    demo.set_defaults(func=run_demo, **own)


def run_demo(args: argparse.Namespace) -> int:
    from llmlab.cli.output import console
    from llmlab.cli.rag import run_guide_ask

    if not args.json:
        console.print(f"[bold]llmlab demo[/bold]: asking the user guide (docs/) — {args.question}\n")
    return run_guide_ask(args, args.question)
