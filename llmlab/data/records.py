"""Training records in the JSONL formats of DESIGN.md, checked one by one.

    text         {"text": str}
    instruction  {"instruction": str, "input"?: str, "output": str}
    chat         {"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...]}
    label        {"text": str, "label": str | int}          classification (encoder-only models)
    seq2seq      {"source": str, "target": str}             translation, summarisation (encoder-decoder)

A file holds one format; the first good record decides which (or the caller names it). Every bad line is
reported as `file:line: what is wrong, and how to fix it` and left out; the good records are all kept, so a
typo on line 812 costs one example rather than the run. `LoadedRecords.problems` lists the bad lines and the
caller decides whether to go on (the CLI prints them and trains on the rest; no good record is an error).

Tests: tests/data/test_records.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmlab.errors import DataError
from llmlab.prompting.chat import ROLES

Format = Literal["text", "instruction", "chat", "label", "seq2seq"]
FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # format: (required fields, optional fields); "label" before "text", which it extends
    "label": (("text", "label"), ()),
    "text": (("text",), ()),
    "instruction": (("instruction", "output"), ("input",)),
    "chat": (("messages",), ()),
    "seq2seq": (("source", "target"), ()),
}


@dataclass(frozen=True)
class Record:
    """One good record and where it came from (`file:line`)."""

    format: Format
    fields: dict[str, Any]
    source: str


@dataclass
class LoadedRecords:
    """The good records of a file, in file order, and one `file:line: ...` message per bad line."""

    path: Path
    format: Format
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def detect_format(record: dict[str, Any]) -> Format | None:
    """The format whose required fields the record has (None when it matches none)."""
    for name, (required, _) in FORMATS.items():
        if all(k in record for k in required):
            return name  # type: ignore[return-value]
    return None


def _check_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return '\'messages\' must be a non-empty list of {"role": ..., "content": ...} objects'
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            return f"message {i} must be an object with exactly 'role' and 'content', got {m!r}"
        if m["role"] not in ROLES:
            return f"message {i} has role {m['role']!r}; use one of {', '.join(ROLES)}"
        if not isinstance(m["content"], str):
            return f"message {i} content must be a string, got {type(m['content']).__name__}"
    if messages[0]["role"] == "assistant":
        return "the conversation starts with an assistant message; put the user's (or a system) message first"
    if messages[-1]["role"] != "assistant":
        return (
            "the last message must be the assistant's (it is what the model learns to write); "
            f"this one ends with a {messages[-1]['role']!r} message"
        )
    return None


def check_record(record: Any, fmt: Format) -> str | None:
    """What is wrong with a record of format `fmt`, or None when it is good."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    required, optional = FORMATS[fmt]
    missing = [k for k in required if k not in record]
    if missing:
        found = detect_format(record)
        hint = f" (it looks like a {found} record; one file holds one format)" if found else ""
        need = ", ".join(repr(k) for k in required)
        return f"{fmt} record is missing {', '.join(repr(k) for k in missing)}{hint}; each line needs {need}"
    unknown = sorted(set(record) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(repr(k) for k in (*required, *optional))
        return f"unknown field(s) {', '.join(repr(u) for u in unknown)} in a {fmt} record; allowed: {allowed}"
    if fmt == "chat":
        return _check_messages(record["messages"])
    if fmt == "label" and (isinstance(record["label"], bool) or not isinstance(record["label"], str | int)):
        return f"field 'label' must be a label name or its index, got {record['label']!r}"
    for key in (k for k in (*required, *optional) if k != "label"):
        if key in record and not isinstance(record[key], str):
            return f"field {key!r} must be a string, got {type(record[key]).__name__}"
    empty = [k for k in ("text", "output", "source", "target") if k in record and not record[k].strip()]
    if empty:
        return f"field {empty[0]!r} is empty; give it the text the model should learn"
    return None


def _parse(line: str) -> tuple[Any, str | None]:
    try:
        return json.loads(line), None
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at column {e.colno}); write one JSON object per line"


def load_records(path: str | Path, fmt: Format | None = None) -> LoadedRecords:
    """Read a JSONL file of training records; bad lines become `problems`, good ones `records`.

    Raises:
        DataError: the file is missing, or it has no good record at all (the message shows the first
            problems).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise DataError(f"file not found: {path}; give a JSONL file of training records") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e.reason}); save it as UTF-8 JSONL") from e
    loaded = LoadedRecords(path, fmt or "text")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        record, problem = _parse(line)
        if problem is None and fmt is None:
            fmt = detect_format(record) if isinstance(record, dict) else None
            if fmt is None:
                problem = (
                    'not a training record; use {"text"}, {"instruction", "output"}, {"messages"}, '
                    '{"text", "label"} or {"source", "target"}'
                )
            else:
                loaded.format = fmt
        if problem is None:
            assert fmt is not None
            problem = check_record(record, fmt)
        if problem is None:
            assert fmt is not None
            loaded.records.append(Record(fmt, record, where))
        else:
            loaded.problems.append(f"{where}: {problem}")
    if not loaded.records:
        first = "; ".join(loaded.problems[:3]) if loaded.problems else "the file is empty"
        raise DataError(f"{path} has no usable training record ({first})")
    return loaded
