"""The `llmlab` command line: one verb per task, thin wrappers over the library.

Every module in this package that defines `register(subparsers)` contributes its verbs; modules import their
heavy dependencies (torch, transformers) inside the handlers so that `llmlab --help` stays instant. This is the
only layer that prints or exits: library errors (`LlmlabError`) become one `error:` line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from llmlab import __version__
from llmlab.errors import LlmlabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmlab",
        description="One toolkit for the whole life of a language model: RAG, prompting, decoding, "
        "fine-tuning, alignment, evaluation and serving, on a CPU and offline.",
    )
    parser.add_argument("--version", action="version", version=f"llmlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `--nproc N` relaunches under torchrun
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except LlmlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
