"""The human-feedback files, read with `file:line` errors and written atomically.

    prompts.jsonl      {"prompt": str}
    completions.jsonl  {"prompt": str, "completions": [str, ...]}                      (llmlab feedback generate)
    ranked.jsonl       {"prompt", "completions", "ranks": [int, ...], "criterion"?, "ranker"?}  (feedback rank)
    pairs.jsonl        {"prompt": str, "chosen": str, "rejected": str}                 (feedback pairs)

Ranks follow DESIGN.md: one per completion, in the completions' order, 1 = best. `criterion` says what was
judged and `ranker` who judged ("human", or "scripted:NAME" for a scripted stand-in for people).
Writes go to a temporary file in the same folder, fsynced, then renamed over the target, so a file on disk is
always complete: a run killed while saving leaves the previous version.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.data.jsonl import iter_jsonl, read_records
from llmlab.errors import DataError
from llmlab.rlhf.preferences import PreferencePair, Ranking

RANKING_FIELDS = ("prompt", "completions", "ranks", "criterion", "ranker")


@dataclass(frozen=True)
class CompletionSet:
    """A prompt and its sampled completions (one line of completions.jsonl), before anyone ranks them."""

    prompt: str
    completions: list[str]
    where: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completions": list(self.completions)}


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object a line, atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a prompts.jsonl file ({"prompt": str} a line)."""
    records = read_records(path, required=("prompt",), kind="prompt record")
    for number, record in zip(_line_numbers(path), records, strict=True):
        if not record["prompt"].strip():
            raise DataError("'prompt' is empty; write the text to complete", f"{path}:{number}")
    return [r["prompt"] for r in records]


def _line_numbers(path: str | Path) -> list[int]:
    return [number for number, _ in iter_jsonl(path)]


def _check_fields(record: dict[str, Any], allowed: Sequence[str], kind: str, where: str) -> None:
    unknown = sorted(set(record) - set(allowed))
    if unknown:
        raise DataError(
            f"unknown field(s) {', '.join(map(repr, unknown))} in a {kind}; allowed: {', '.join(map(repr, allowed))}",
            where,
        )


def _completion_set(record: dict[str, Any], where: str, kind: str) -> CompletionSet:
    for key in ("prompt", "completions"):
        if key not in record:
            raise DataError(f"{kind} is missing {key!r}; each line needs 'prompt' and 'completions'", where)
    if not isinstance(record["prompt"], str):
        raise DataError(f"'prompt' must be a string, got {type(record['prompt']).__name__}", where)
    completions = record["completions"]
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise DataError("'completions' must be a list of strings", where)
    if len(completions) < 2:
        raise DataError(
            f"{len(completions)} completion(s); ranking needs at least 2 to compare (generate with -n 2 or more)",
            where,
        )
    return CompletionSet(record["prompt"], list(completions), where)


def read_completion_sets(path: str | Path) -> list[CompletionSet]:
    """completions.jsonl (ranked files are accepted too: their ranks are ignored)."""
    sets = []
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        _check_fields(record, RANKING_FIELDS, "completions record", where)
        sets.append(_completion_set(record, where, "completions record"))
    if not sets:
        raise DataError(f"{path} has no records; write one JSON object per line")
    return sets


def read_rankings(path: str | Path, allow_empty: bool = False) -> list[Ranking]:
    """ranked.jsonl: every record must carry ranks that fit its completions (see `validate_ranks`)."""
    from llmlab.rlhf.preferences import validate_ranks

    rankings = []
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        _check_fields(record, RANKING_FIELDS, "ranking", where)
        base = _completion_set(record, where, "ranking")
        if "ranks" not in record:
            raise DataError(
                "ranking is missing 'ranks'; rank the completions first with `llmlab feedback rank`", where
            )
        ranks = validate_ranks(record["ranks"], len(base.completions), where)
        for key in ("criterion", "ranker"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise DataError(f"{key!r} must be a string, got {type(record[key]).__name__}", where)
        rankings.append(
            Ranking(
                base.prompt, base.completions, ranks, record.get("criterion"), record.get("ranker"), where
            )
        )
    if not rankings and not allow_empty:
        raise DataError(f"{path} has no rankings; write one JSON object per line")
    return rankings


def ranking_record(ranking: Ranking) -> dict[str, Any]:
    record: dict[str, Any] = {
        "prompt": ranking.prompt,
        "completions": list(ranking.completions),
        "ranks": list(ranking.ranks),
    }
    if ranking.criterion is not None:
        record["criterion"] = ranking.criterion
    if ranking.ranker is not None:
        record["ranker"] = ranking.ranker
    return record


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """pairs.jsonl: {"prompt", "chosen", "rejected"} strings; a pair whose two texts are equal is refused."""
    records = read_records(path, required=("prompt", "chosen", "rejected"), kind="pair")
    for number, record in zip(_line_numbers(path), records, strict=True):
        if record["chosen"] == record["rejected"]:
            raise DataError("'chosen' and 'rejected' are the same text; a pair needs two different completions",
                            f"{path}:{number}")  # fmt: skip
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in records]


def check_resume(
    done: Sequence[CompletionSet | Ranking], todo: Sequence[CompletionSet], out: str | Path
) -> None:
    """An existing output file must hold the first len(done) inputs, in order, to be continued.

    Raises:
        DataError: at the first record of `out` that does not match its input line.
    """
    if len(done) > len(todo):
        raise DataError(
            f"{out} holds {len(done)} records but the input has only {len(todo)}; it belongs to another input "
            "file: choose another --out or delete it"
        )
    for record, source in zip(done, todo, strict=False):
        if record.prompt != source.prompt or list(record.completions) != list(source.completions):
            raise DataError(
                f"this record is not {source.where}'s prompt and completions, so {out} belongs to another "
                "input file; choose another --out or delete it",
                record.where,
            )
