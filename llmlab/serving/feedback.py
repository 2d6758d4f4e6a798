"""The web page's feedback ranking: each ranked prompt is added to the same JSONL file `llmlab feedback rank`
writes ({"prompt", "completions", "ranks", "criterion"?, "ranker": "human"}, llmlab/rlhf/records.py), so
`llmlab feedback pairs` reads it unchanged.

Ranks are checked with the same rules as the terminal (rlhf/preferences.py `validate_ranks`: one per
completion, whole numbers 1..N, ties allowed). Every save rewrites the whole file atomically (records.py
`write_jsonl`: temporary file, fsync, rename) under a lock, so concurrent saves never interleave and a crash
leaves the previous version. Tests: tests/serving/test_serve_feedback.py, tests/serving/test_serve_browser.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from llmlab.errors import DataError
from llmlab.rlhf.preferences import Ranking, validate_ranks
from llmlab.rlhf.records import ranking_record, read_rankings, write_jsonl

HUMAN = "human"
MAX_COMPLETIONS = 16
MAX_TEXT = 20_000


class RankingFile:
    """Appends checked rankings to one JSONL file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return len(self._read())

    def _read(self) -> list[Ranking]:
        return read_rankings(self.path, allow_empty=True) if self.path.exists() else []

    def add(self, body: Any) -> int:
        """Check a {"prompt", "completions", "ranks", "criterion"?} object and save it; returns the count saved.

        Raises:
            DataError: a field is missing or wrong, or the ranks do not fit the completions.
        """
        if not isinstance(body, dict) or set(body) - {"prompt", "completions", "ranks", "criterion"}:
            raise DataError('send {"prompt", "completions", "ranks", "criterion"?}')
        prompt, completions = body.get("prompt"), body.get("completions")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_TEXT:
            raise DataError("'prompt' must be a non-empty string")
        if (
            not isinstance(completions, list)
            or not 2 <= len(completions) <= MAX_COMPLETIONS
            or not all(isinstance(c, str) and len(c) <= MAX_TEXT for c in completions)
        ):
            raise DataError(f"'completions' must be a list of 2 to {MAX_COMPLETIONS} strings")
        criterion = body.get("criterion") or None
        if criterion is not None and (not isinstance(criterion, str) or len(criterion) > 200):
            raise DataError("'criterion' must be a short string")
        ranks = validate_ranks(body.get("ranks"), len(completions))
        ranking = Ranking(prompt, list(completions), ranks, criterion, HUMAN)
        with self._lock:
            rankings = [*self._read(), ranking]
            write_jsonl(self.path, [ranking_record(r) for r in rankings])
            return len(rankings)
