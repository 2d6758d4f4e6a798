"""Fixtures: a real server on loopback over a tiny random Llama and a tiny store (fast tier); helpers in servekit.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "rag"))  # ragkit: the tiny BERT embedder

DOCS = {
    "bread.md": "# Baking bread\n\nKnead the dough for ten minutes, then let it rise for an hour in a warm place.\n",
    "rocket.md": "# Rocket engines\n\nA rocket engine burns propellant and pushes hot exhaust out of a nozzle.\n",
}


@pytest.fixture(scope="session")
def tiny_engine(tiny_tok):
    from tiny import tiny_llama

    from llmlab.generation import Engine

    return Engine(tiny_llama(len(tiny_tok), max_position_embeddings=4096), tiny_tok, precision="fp32")


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    from ragkit import save_tiny_bert

    from llmlab.rag.embedding import EmbedderConfig
    from llmlab.rag.store import Store

    root = tmp_path_factory.mktemp("serve-store")
    bert = save_tiny_bert(root / "bert")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    store = Store.open(str(root / "store.sqlite"), embedder=EmbedderConfig(model=str(bert), precision="fp32"))
    store.ingest([docs])
    yield store
    store.close()


@pytest.fixture(scope="session")
def server(tiny_engine, tiny_store, tmp_path_factory):
    from servekit import start_server

    running = start_server(tiny_engine, tmp_path_factory.mktemp("serve"), tiny_store)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
