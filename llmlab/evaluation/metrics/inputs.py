"""Predictions and references: reading them from files and checking that they pair up.

Every text metric takes `predictions: Sequence[str]` and `references: Sequence[Sequence[str]]`, where
`references[i]` lists the one or more references of `predictions[i]`. Files hold one item per line: plain text,
or with a `.jsonl` name one JSON string per line (so a text may contain newlines) or, for references, an array
of strings (that item's references). Several reference files give each item one reference from each. Errors
name the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from llmlab.errors import ConfigError, DataError


def check_pairs(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise ConfigError unless there is at least one item and every item has at least one reference."""
    if isinstance(predictions, str):
        raise ConfigError("predictions must be a list of strings, got one string")
    if not predictions:
        raise ConfigError("no predictions to score; give at least one item")
    if len(predictions) != len(references):
        raise ConfigError(
            f"{len(predictions)} predictions but {len(references)} reference lists; pair them 1:1"
        )
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ConfigError(f"item {i + 1}: references must be a non-empty list of strings, got {refs!r}")


def _decode_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file without their line ends; a final newline does not start an item."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder; give a file") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            raise DataError(
                f"not UTF-8 text (byte {e.start + 1} of the line); save the file as UTF-8", f"{path}:{number}"
            ) from None
    return out


def _json_line(line: str, where: str, allow_list: bool) -> list[str]:
    if not line.strip():
        raise DataError('blank line; write "" for an empty text (one JSON value per line)', where)
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(
            f"invalid JSON ({e.msg} at column {e.colno}); each line must be one JSON value", where
        ) from None
    if isinstance(value, str):
        return [value]
    if allow_list and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    expected = (
        "a JSON string, or a non-empty array of strings (several references)"
        if allow_list
        else "a JSON string"
    )
    raise DataError(f"expected {expected}, got {json.dumps(value)[:60]}", where)


def read_texts(path: str | Path, allow_lists: bool = False) -> list[list[str]]:
    """The items of a predictions or references file, each a list of one or more texts.

    `.jsonl`: one JSON string per line (texts may hold newlines, e.g. one sentence per line for ROUGE-Lsum);
    with `allow_lists` a line may also be an array of strings, the references of one item. Any other file: one
    text per line.

    Raises:
        DataError: `file:line: what is wrong`.
    """
    path = Path(path)
    lines = _decode_lines(path)
    if not lines:
        raise DataError(f"{path} is empty; give one item per line")
    if path.suffix.lower() != ".jsonl":
        return [[line] for line in lines]
    return [_json_line(line, f"{path}:{n}", allow_lists) for n, line in enumerate(lines, 1)]


def _check_counts(predictions: Path, n_preds: int, references: Path, n_refs: int) -> None:
    if n_preds == n_refs:
        return
    if n_preds > n_refs:
        where, what = (
            f"{predictions}:{n_refs + 1}",
            f"{n_preds} predictions but {references} has {n_refs} references",
        )
    else:
        where, what = (
            f"{references}:{n_preds + 1}",
            f"{n_refs} references but {predictions} has {n_preds} predictions",
        )
    raise DataError(f"{what}; give one item per line in both, in the same order", where)


def read_pairs(
    predictions: str | Path, references: Sequence[str | Path]
) -> tuple[list[str], list[list[str]]]:
    """Predictions and their references from files, paired line by line.

    Several reference files give each item one more reference each (as sacreBLEU's several reference files);
    a `.jsonl` reference file may instead give each item an array of references.
    """
    if not references:
        raise ConfigError("give at least one --references file")
    pred_path = Path(predictions)
    preds = [texts[0] for texts in read_texts(pred_path)]
    refs: list[list[str]] = [[] for _ in preds]
    for ref in references:
        items = read_texts(ref, allow_lists=True)
        _check_counts(pred_path, len(preds), Path(ref), len(items))
        for item, texts in zip(refs, items, strict=True):
            item.extend(texts)
    return preds, refs


def read_text_records(path: str | Path) -> list[str]:
    """The `text` of each record of a JSONL file of `{"text": ...}` records (or the lines of any other file)."""
    path = Path(path)
    lines = _decode_lines(path)
    if not lines:
        raise DataError(f"{path} is empty; give one record per line")
    if path.suffix.lower() != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        if not line.strip():
            raise DataError('blank line; every line must be a JSON record {"text": ...}', where)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg} at column {e.colno})", where) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataError(f'expected a record {{"text": "..."}}, got {line.strip()[:60]}', where)
        texts.append(record["text"])
    return texts
