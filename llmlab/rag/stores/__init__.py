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
    "open_store",
    "store_location",
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


def open_store(name_or_url: str) -> VectorStore:
    """Open (creating if needed) the store a `--store` value names."""
    backend, location = store_location(name_or_url)
    if backend == "postgres":
        from llmlab.rag.stores.postgres import PostgresStore

        return PostgresStore(location)
    from llmlab.rag.stores.sqlite import SQLiteStore

    return SQLiteStore(location)
