"""The default store behind `llmlab ask`: llmlab's own user guide (the Markdown pages in docs/).

    docs folder: $LLMLAB_DOCS, else the docs/ folder next to the llmlab package (a source checkout)
    store:       $LLMLAB_HOME/stores/llmlab-guide.sqlite, built on first use

Every call brings the store up to date with the folder: ingest is incremental by content hash, so unchanged
pages are not even parsed, changed pages are replaced, deleted pages are pruned, and pages from another docs
folder (LLMLAB_DOCS changed) are removed. Tests: tests/rag/test_answer_guide.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from llmlab.errors import ConfigError
from llmlab.rag.ingest import IngestConfig, IngestProgress, IngestReport
from llmlab.rag.store import Store
from llmlab.rag.stores import llmlab_home

GUIDE_STORE = "llmlab-guide"
GUIDE_INCLUDE = ("*.md",)


def docs_folder() -> Path:
    """The user guide's folder: $LLMLAB_DOCS, else `docs/` beside the installed llmlab package.

    Raises:
        ConfigError: the folder does not exist (for example a wheel install, which has no docs/).
    """
    import llmlab

    env = os.environ.get("LLMLAB_DOCS")
    folder = Path(env).expanduser() if env else Path(llmlab.__file__).resolve().parents[1] / "docs"
    if not folder.is_dir():
        where = "LLMLAB_DOCS points to" if env else "the llmlab checkout has no docs folder at"
        raise ConfigError(
            f"{where} {folder}, which is not a folder; set LLMLAB_DOCS to llmlab's docs/ folder (from a clone "
            "of the repository), or ask your own documents with: llmlab rag ask QUESTION --store NAME"
        )
    return folder.resolve()


def guide_location() -> Path:
    """Where the guide store lives: $LLMLAB_HOME/stores/llmlab-guide.sqlite."""
    return llmlab_home() / "stores" / f"{GUIDE_STORE}.sqlite"


def open_guide(
    progress: Callable[[IngestProgress], None] | None = None, embedder: str | None = None
) -> tuple[Store, IngestReport]:
    """Open the guide store, brought up to date with the docs folder; returns (store, what changed).

    Args:
        embedder: an embedding model name or folder (default: the store's own, else minilm-l6).
    """
    folder = docs_folder()
    store = Store.open(str(guide_location()), embedder=embedder)
    try:
        report = store.ingest(
            [folder], prune=True, progress=progress, config=IngestConfig(include=GUIDE_INCLUDE)
        )
        prefix = str(folder) + os.sep
        stale = [s for s in store.backend.document_hashes() if not s.startswith(prefix)]
        if stale:
            store.remove(stale)
            report.removed += stale
    except BaseException:
        store.close()
        raise
    return store, report
