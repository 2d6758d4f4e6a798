"""JSONL records (one JSON object a line) read with `file:line` errors that say what is wrong and how to fix it.

Formats (DESIGN.md): instruction {"instruction", "input"?, "output"}; chat {"messages": [{"role", "content"}]};
text {"text"}; ranking {"prompt", "completions", "ranks"}; pairs {"prompt", "chosen", "rejected"}; few-shot
examples {"input", "output"}. Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llmlab.errors import DataError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for every non-blank line; a bad line raises `DataError` at `file:line`."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError as e:
        raise DataError(f"file not found: {path}") from e
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"invalid JSON ({e.msg} at column {e.colno}); write one JSON object per line",
                    f"{path}:{number}",
                ) from e
            if not isinstance(record, dict):
                raise DataError(f"expected a JSON object, got {type(record).__name__}", f"{path}:{number}")
            yield number, record


def read_records(
    path: str | Path, required: Sequence[str], optional: Sequence[str] = (), kind: str = "record"
) -> list[dict[str, Any]]:
    """Read every record, checking that `required` string fields are present and no unknown field appears."""
    records = []
    allowed = set(required) | set(optional)
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        missing = [k for k in required if k not in record]
        if missing:
            raise DataError(
                f"{kind} is missing {', '.join(repr(m) for m in missing)}; each line needs "
                f"{', '.join(repr(k) for k in required)}",
                where,
            )
        unknown = sorted(set(record) - allowed)
        if unknown:
            raise DataError(
                f"unknown field(s) {', '.join(repr(u) for u in unknown)} in a {kind}; allowed: "
                f"{', '.join(repr(k) for k in sorted(allowed))}",
                where,
            )
        for key in allowed & set(record):
            if not isinstance(record[key], str):
                raise DataError(f"field {key!r} must be a string, got {type(record[key]).__name__}", where)
        records.append(record)
    if not records:
        raise DataError(f"{path} has no records; write one JSON object per line")
    return records
