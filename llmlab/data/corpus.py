"""Plain-text corpora for pretraining: folders of .txt/.md files and JSONL text records, one document each.

A document is a file (.txt, .md, .markdown, .rst), or one {"text": ...} record of a .jsonl file. Folders are
read recursively in sorted order, hidden files and folders skipped, so the same folder always gives the same
documents in the same order (the train/validation split is by document and by seed:
`llmlab.data.packing.split_by_seed`). Unreadable files and bad JSONL lines are reported, not fatal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmlab.data.records import load_records
from llmlab.errors import DataError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")


@dataclass(frozen=True)
class Document:
    text: str
    source: str
    """The file, or `file:line` for a JSONL record."""


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"--data {path} does not exist; give a folder of .txt/.md files or a .jsonl file")
    found = []
    for p in sorted(path.rglob("*")):
        hidden = any(part.startswith(".") for part in p.relative_to(path).parts)
        if p.is_file() and not hidden and p.suffix.lower() in (*TEXT_SUFFIXES, ".jsonl"):
            found.append(p)
    return found


def load_documents(paths: Sequence[str | Path]) -> tuple[list[Document], list[str]]:
    """(documents, problems) from files and folders.

    Raises:
        DataError: a path does not exist, or no document was found at all.
    """
    docs: list[Document] = []
    problems: list[str] = []
    for root in paths:
        for file in _files(Path(root)):
            if file.suffix.lower() == ".jsonl":
                try:
                    loaded = load_records(file, "text")
                except DataError as e:
                    problems.append(str(e))
                    continue
                problems += loaded.problems
                docs += [Document(r.fields["text"], r.source) for r in loaded.records]
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                problems.append(f"{file}: not UTF-8 text ({e.reason}); skipped")
                continue
            if text.strip():
                docs.append(Document(text, str(file)))
    if not docs:
        where = ", ".join(str(p) for p in paths)
        raise DataError(
            f'no text found in {where}; give .txt/.md files or a .jsonl file of {{"text"}} records'
        )
    return docs, problems
