"""RAG stores: one interface (protocol.py), an embedded SQLite file (sqlite.py), PostgreSQL + pgvector (postgres.py).

`open_store(name_or_url)` picks the backend from the value of `--store`:
- `postgresql://...` (or `postgres://...`): a PostgreSQL database with the pgvector extension;
- a value ending in `.sqlite` or `.db`: that SQLite file;
- any other value is a store name: the SQLite file `$LLMLAB_HOME/stores/NAME.sqlite` (LLMLAB_HOME defaults to
  `~/.llmlab`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llmlab.errors import ConfigError
from llmlab.rag.stores.protocol import SOURCE_TYPES, Filters, StoreStats, VectorStore

__all__ = [
    "SOURCE_TYPES",
    "Filters",
    "StoreStats",
    "VectorStore",
    "llmlab_home",
    "missing_store_message",
    "open_store",
    "store_location",
    "store_names",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def llmlab_home() -> Path:
    """`$LLMLAB_HOME`, or `~/.llmlab`."""
    return Path(os.environ.get("LLMLAB_HOME") or Path.home() / ".llmlab").expanduser()


def store_location(name_or_url: str) -> tuple[str, str]:
    """(backend, location) for a `--store` value: ("postgres", url) or ("sqlite", file path)."""
    value = str(name_or_url).strip()
    if value.startswith(("postgresql://", "postgres://")):
        return "postgres", value
    if value.endswith((".sqlite", ".db")):
        return "sqlite", str(Path(value).expanduser())
    if not _NAME.fullmatch(value):
        raise ConfigError(
            f"--store must be a name (letters, digits, '.', '_', '-'), a path ending in .sqlite or .db, or a "
            f"postgresql:// URL; got {value!r}"
        )
    return "sqlite", str(llmlab_home() / "stores" / f"{value}.sqlite")


def open_store(name_or_url: str, create: bool = True) -> VectorStore:
    """Open the store a `--store` value names; with `create=False` (reading commands) a store that does not
    exist is an error instead of a new empty store.

    Raises:
        ConfigError: with `create=False`, no store by that name (the message lists the stores there are).
    """
    backend, location = store_location(name_or_url)
    if backend == "postgres":
        from llmlab.rag.stores.postgres import PostgresStore

        return PostgresStore(location, create=create)
    from llmlab.rag.stores.sqlite import SQLiteStore

    if not create and not Path(location).exists():
        raise ConfigError(missing_store_message(name_or_url))
    return SQLiteStore(location)


def store_names() -> list[str]:
    """The named stores under `$LLMLAB_HOME/stores`."""
    folder = llmlab_home() / "stores"
    return sorted(p.stem for p in folder.glob("*.sqlite")) if folder.is_dir() else []


def missing_store_message(name_or_url: str) -> str:
    value = str(name_or_url).strip()
    what = f"no store at {value}" if value.endswith((".sqlite", ".db")) else f"no store named {value}"
    names = store_names()
    there = f"the stores there are: {', '.join(names)}" if names else "there are no stores yet"
    return f"{what}; create it with: llmlab rag ingest PATH --store {value} ({there})"
