"""`llmlab serve`: an OpenAI-compatible API with continuous batching, and the web page, in one process."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from typing import Any

from llmlab.cli.args import add_config_arguments, build_config
from llmlab.cli.output import err_console
from llmlab.cli.session import (
    adapter_specs,
    add_adapter_argument,
    add_model_arguments,
    decode_hooks,
    load_engine,
)

KEY_ENV = "LLMLAB_API_KEY"
HELP = (
    "Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/embeddings, "
    "/v1/models, /health) and a web page at / (chat with your documents, a decoding playground, feedback "
    "ranking). Requests are batched together as they arrive (continuous batching). Listens on 127.0.0.1 "
    "unless --host says otherwise; --api-key (or the LLMLAB_API_KEY environment variable) makes every route but "
    "/health require it."
)


def register(subparsers: Any) -> None:
    from llmlab.serving.config import ServeConfig

    parser = subparsers.add_parser("serve", help="serve a model over an OpenAI-compatible API and a web page",
                                   description=HELP)  # fmt: skip
    add_model_arguments(parser)
    add_adapter_argument(parser)
    parser.add_argument(
        "--store", metavar="NAME", help="a RAG store for answers with sources (llmlab rag ingest)"
    )
    parser.add_argument("--embedder", default="minilm-l6", help="embedding model for /v1/embeddings when no --store "
                        "is given (default: minilm-l6)")  # fmt: skip
    add_config_arguments(parser, ServeConfig)
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="server settings from a YAML file (flags override)"
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from llmlab.serving.config import ServeConfig

    config = build_config(ServeConfig, args, args.config)
    if config.api_key is None and os.environ.get(KEY_ENV):  # keeps the key out of `ps` and shell history
        config = dataclasses.replace(config, api_key=os.environ[KEY_ENV])
    store = None
    if args.store:
        from llmlab.rag.store import Store

        store = Store.open(args.store, create=False)
    loaded, engine = load_engine(args)
    adapters = adapter_specs(args.adapters)
    model_id = loaded.name + (f"+{adapters[0][0]}" if adapters else "")  # the active adapter serves
    if not config.loopback and config.api_key is None:
        err_console.print(f"[bold yellow]warning:[/bold yellow] listening on {config.host} without --api-key: anyone "
                          "who can reach this machine can use the model")  # fmt: skip
    try:
        prefix = decode_hooks(loaded.model).get("prefix_embeds")  # a prompt-tuning adapter's virtual tokens
        asyncio.run(_serve(engine, config, model_id, store, args.embedder, prefix))
    except KeyboardInterrupt:
        pass
    finally:
        if store is not None:
            store.close()
    return 0


async def _serve(engine: Any, config: Any, model_id: str, store: Any, embedder: str, prefix: Any) -> None:
    from llmlab.serving.app import Server

    server = Server(engine, config, model_id, store=store, embedder_name=embedder, prefix_embeds=prefix)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from llmlab.cli.rag_output import display_path

    where = f"store {display_path(store.location)}" if store is not None else "no store"
    print(f"llmlab serve: {server.url} (model {model_id}, {where}, batch {config.max_batch}, "
          f"{server.threads or 'default'} threads); Ctrl-C stops", flush=True)  # fmt: skip
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.close()
