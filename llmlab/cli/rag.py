"""`llmlab rag ingest | ask | chat | search | list` over a store, and `llmlab ask` over llmlab's own guide.

A store is named by `--store`: a name (the SQLite file $LLMLAB_HOME/stores/NAME.sqlite), a path ending in
.sqlite or .db, or a postgresql:// URL. Answers stream, then the sources that support them are listed with
the supporting snippet (see llmlab/rag/answer.py for how answers are grounded and checked).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.cli.args import add_config_arguments, build_config
from llmlab.cli.output import err_console, print_json, print_table, write_stream
from llmlab.cli.rag_output import (
    IngestBar,
    display_path,
    hide_password,
    hit_json,
    ingest_report_dict,
    print_context,
    print_hits,
    print_ingest_report,
    print_sources,
    trimmed,
)

if TYPE_CHECKING:
    from llmlab.rag.answer import Answerer
    from llmlab.rag.grounded_answer import AnswerStream
    from llmlab.rag.result import Answer
    from llmlab.rag.store import Store

DEFAULT_STORE = "default"
_GEN_SKIP = ("stop_token_ids", "ignore_eos", "logprobs")
"""Decoding flags left out of the answering verbs. --top-k is sampling's there too; --chunks is how many
chunks are retrieved."""


def register(subparsers: Any) -> None:
    rag = subparsers.add_parser(
        "rag",
        help="answer questions from your documents: ingest, ask, chat, search, list",
        description="Retrieval-augmented generation over a store of your documents (PDF, HTML, Markdown, "
        "text, Word, web sites).",
    )
    sub = rag.add_subparsers(dest="rag_command", metavar="SUBCOMMAND")
    rag.set_defaults(func=lambda _: rag.print_help())
    _register_ingest(sub)
    ask = sub.add_parser("ask", help="answer a question from a store, with its sources")
    ask.add_argument("question", help="the question")
    _add_store(ask)
    _add_answer_arguments(ask)
    ask.set_defaults(func=run_ask)
    chat = sub.add_parser(
        "chat",
        help="multi-turn questions over a store (/reset, /quit)",
        description="Ask questions one after another; a follow-up is rewritten into a standalone search "
        "query. Commands: /reset forgets the conversation, /quit leaves.",
    )
    _add_store(chat)
    _add_answer_arguments(chat, show_context=False)
    chat.set_defaults(func=run_chat)
    _register_search(sub)
    ls = sub.add_parser("list", help="the stores, or the documents in one store (--store)")
    ls.add_argument("--store", help="list this store's documents instead of the stores")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)

    top = subparsers.add_parser(
        "ask",
        help="ask llmlab's own user guide a question (answer with sources)",
        description="Answer a question from llmlab's user guide (docs/). The guide's store is built on first "
        "use under $LLMLAB_HOME and brought up to date when the pages change. Set LLMLAB_DOCS to use "
        "another docs folder.",
    )
    top.add_argument("question", help="the question, e.g. 'How do I stream a chat answer?'")
    _add_answer_arguments(top)
    top.set_defaults(func=run_guide_ask)


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help="a store name, a .sqlite/.db path or a postgresql:// URL (default: default)",
    )


def _add_answer_arguments(
    parser: argparse.ArgumentParser, show_context: bool = True, defaults: dict[str, Any] | None = None
) -> None:
    """The answer, model and decoding flags; `defaults`: the verb's own AnswerConfig defaults (help text)."""
    from llmlab.cli.session import add_model_arguments
    from llmlab.generation.config import GenerationConfig
    from llmlab.rag.answer import ANSWER_DEFAULTS, AnswerConfig

    add_config_arguments(parser, AnswerConfig, defaults=defaults)
    add_model_arguments(parser)
    group = parser.add_argument_group(
        "decoding", f"as in llmlab generate; answers default to {_defaults_text(ANSWER_DEFAULTS)}"
    )
    add_config_arguments(group, GenerationConfig, skip=_GEN_SKIP)  # type: ignore[arg-type]
    if show_context:
        parser.add_argument(
            "--show-context", action="store_true", help="print the numbered context blocks given to the model"
        )
    parser.add_argument("--json", action="store_true", help="print one JSON object per answer (no streaming)")


def _defaults_text(defaults: dict[str, Any]) -> str:
    return ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in defaults.items())


def _register_ingest(sub: Any) -> None:
    from llmlab.rag.ingest import IngestConfig

    ingest = sub.add_parser(
        "ingest",
        help="add files, folders and web sites to a store (re-ingest by content hash)",
        description="Load, chunk, embed and store documents. Folders are walked recursively; an http(s) URL "
        "is crawled on its own site. Unchanged sources are skipped by content hash; changed ones replaced; "
        "with --prune, stored sources no longer found under the given folders or URLs are removed.",
    )
    ingest.add_argument("sources", nargs="+", metavar="PATH_OR_URL", help="files, folders, http(s) URLs")
    _add_store(ingest)
    ingest.add_argument(
        "--embedder",
        help="embedding model for a new store (name or folder; default: the store's, else minilm-l6)",
    )
    add_config_arguments(ingest, IngestConfig)
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.set_defaults(func=run_ingest)


def _register_search(sub: Any) -> None:
    from llmlab.rag.retrieval import SearchConfig

    search = sub.add_parser("search", help="ranked chunks for a query, with scores (no generation)")
    search.add_argument("query", help="what to search for")
    _add_store(search)
    add_config_arguments(search, SearchConfig, rename={"top_k": "chunks"})
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.set_defaults(func=run_search)


# ingest -----------------------------------------------------------------------------------------------------


def run_ingest(args: argparse.Namespace) -> int:
    from llmlab.rag.ingest import IngestConfig
    from llmlab.rag.store import Store

    config = build_config(IngestConfig, args)
    with Store.open(args.store, embedder=args.embedder) as store:
        quiet = args.json or not sys.stderr.isatty()
        if quiet:
            report = store.ingest(args.sources, config=config)
        else:
            with IngestBar() as bar:
                report = store.ingest(args.sources, config=config, progress=bar)
        location = store.location
    if args.json:
        print_json({"store": hide_password(location), **ingest_report_dict(report)})
    else:
        print_ingest_report(report, display_path(location))
    return 1 if report.failed and not (report.added or report.updated or report.unchanged) else 0


# answering --------------------------------------------------------------------------------------------------


def _load_engine(args: argparse.Namespace) -> Any:
    """The decoding engine for --model/--device/--precision and the grounded-answer --adapter, merged into
    the weights (tests replace this with a scripted fake)."""
    from llmlab.cli.session import load_engine
    from llmlab.rag.adapter import answer_adapter
    from llmlab.rag.answer import AnswerConfig

    adapter = answer_adapter(getattr(args, "adapter", AnswerConfig.adapter), args.model)  # unset: the default
    settings = argparse.Namespace(**{**vars(args), "adapter": adapter and str(adapter)})
    return load_engine(settings, merge=True)[1]


def make_answerer(args: argparse.Namespace, store: Store) -> Answerer:
    from llmlab.generation.config import GenerationConfig
    from llmlab.rag.answer import ANSWER_DEFAULTS, AnswerConfig, Answerer
    from llmlab.rag.reader import needs_no_generator

    config = build_config(AnswerConfig, args)
    generation = build_config(GenerationConfig, args, defaults=ANSWER_DEFAULTS)
    reader_only = needs_no_generator(config.answer_style, getattr(args, "model", None))
    engine = None if reader_only else _load_engine(args)  # the span reader needs no generator
    return Answerer(store, engine, config, generation)


def stream_answer(stream: AnswerStream, args: argparse.Namespace, root: Path | None) -> Answer:
    """Print one answer as the CLI does: context (--show-context), streamed text, sources; or JSON."""
    if args.json:
        answer = stream.result()
        print_json(answer.to_dict(root))
        return answer
    if getattr(args, "show_context", False):
        print_context(stream, root)
    for piece in trimmed(stream):
        write_stream(piece)
    assert stream.answer is not None
    write_stream("\n" if stream.answer.not_found else "\n\n")  # "I don't know" has no sources below it
    print_sources(stream.answer, root)
    return stream.answer


def run_ask(args: argparse.Namespace) -> int:
    from llmlab.rag.store import Store

    with Store.open(args.store, create=False) as store:
        answerer = make_answerer(args, store)
        stream_answer(answerer.stream(args.question), args, None)
    return 0


def run_guide_ask(args: argparse.Namespace, question: str | None = None) -> int:
    """`llmlab ask`: bring the guide's store up to date, then answer from it."""
    from llmlab.rag.guide import docs_folder, open_guide

    root = docs_folder().parent
    if args.json or not sys.stderr.isatty():
        store, report = open_guide()
    else:
        with IngestBar() as bar:
            store, report = open_guide(progress=bar)
    with store:
        changed = len(report.added) + len(report.updated) + len(report.removed)
        if changed and not args.json:
            err_console.print(
                f"[dim]guide store updated: {changed} page(s) changed ({display_path(store.location)})[/dim]",
                soft_wrap=True,
            )
        for source, reason in report.failed:
            err_console.print(f"[yellow]guide page not loaded[/yellow] {source}: {reason}")
        answerer = make_answerer(args, store)
        stream_answer(answerer.stream(question or args.question), args, root)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from llmlab.rag.conversation import Conversation
    from llmlab.rag.store import Store

    with Store.open(args.store, create=False) as store:
        conversation = Conversation(make_answerer(args, store))
        if not args.json:
            err_console.print(
                f"[bold]{display_path(store.location)}[/bold] — ask a question; /reset forgets, /quit leaves."
            )
        while True:
            try:
                line = input("" if args.json else "you> ").strip()
            except EOFError:
                return 0
            if not line:
                continue
            if line in ("/quit", "/exit", "/q"):
                return 0
            if line.startswith("/"):
                _chat_command(conversation, line, args.json)
                continue
            stream = conversation.ask(line)
            if not args.json and conversation.turns:  # a follow-up: say what was searched for
                how = "rewritten" if conversation.last_rewritten else "previous question + follow-up"
                err_console.print(f"[dim]searching ({how}): {stream.query}[/dim]")
            stream_answer(stream, args, None)


def _chat_command(conversation: Any, line: str, as_json: bool) -> None:
    if line == "/reset":
        conversation.reset()
        message = "conversation cleared"
    else:
        message = "commands: /reset (forget the conversation), /quit"
    if as_json:
        print_json({"info": message})
    else:
        err_console.print(f"[dim]{message}[/dim]")


# search and list --------------------------------------------------------------------------------------------


def run_search(args: argparse.Namespace) -> int:
    from llmlab.rag.retrieval import SearchConfig
    from llmlab.rag.store import Store

    config = build_config(SearchConfig, args)
    with Store.open(args.store, create=False) as store:
        hits = store.search(args.query, config=config)
    if args.json:
        print_json([hit_json(h) for h in hits])
        return 0
    print_hits(hits, config.mode)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from llmlab.rag.store import Store
    from llmlab.rag.stores import llmlab_home

    if args.store:
        with Store.open(args.store, create=False) as store:
            sources = sorted(store.backend.document_hashes())
            location = store.location
        if args.json:
            print_json({"store": hide_password(location), "documents": sources})
        else:
            print_table(
                f"{display_path(location)}: {len(sources)} document(s)",
                ["source"],
                [[display_path(s)] for s in sources],
            )
        return 0
    folder = llmlab_home() / "stores"
    rows = [_store_row(path) for path in sorted(folder.glob("*.sqlite"))] if folder.is_dir() else []
    if args.json:
        print_json(rows)
    else:
        columns = ["name", "documents", "chunks", "embedder", "MB"]
        print_table(f"stores in {folder}", columns, [[r[c.lower()] for c in columns] for r in rows])
    return 0


def _store_row(path: Path) -> dict[str, Any]:
    from llmlab.rag.stores.sqlite import SQLiteStore

    store = SQLiteStore(path)
    try:
        stats = store.stats()
    finally:
        store.close()
    embedder = os.path.basename(stats.embedder) if stats.embedder else None
    return {
        "name": path.stem,
        "documents": stats.documents,
        "chunks": stats.chunks,
        "embedder": embedder,
        "mb": round(path.stat().st_size / 1e6, 2),
        "path": str(path),
    }
