"""Scripted rankers: stand-ins for people, with a stated rule, for tests, demos and synthetic preferences.

They are NOT human feedback. A ranking they write is labelled `"ranker": "scripted:NAME"` so that nobody
mistakes it for a person's judgement. Each takes a prompt and its completions and returns one rank per
completion (1 = best); equal ranks are ties and make no preference pair.

    shortest        fewer characters is better (equal lengths tie)
    longest         more characters is better (equal lengths tie)
    contains:WORD   completions containing WORD (case-insensitive, as a whole word) rank 1, the others 2

Tests: tests/rlhf/test_rankers.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from llmlab.errors import ConfigError

Ranker = Callable[[str, Sequence[str]], list[int]]


def ranks_from_scores(scores: Sequence[float]) -> list[int]:
    """Dense ranks from scores, higher is better: scores 5, 9, 5 -> ranks 2, 1, 2; 4, 4, 1 -> 1, 1, 2
    (ties share a rank; the next rank follows without a gap)."""
    distinct = sorted(set(scores), reverse=True)
    return [1 + distinct.index(score) for score in scores]


def shortest(prompt: str, completions: Sequence[str]) -> list[int]:
    """Fewer characters (after stripping surrounding spaces) ranks higher."""
    return ranks_from_scores([-len(c.strip()) for c in completions])


def longest(prompt: str, completions: Sequence[str]) -> list[int]:
    """More characters (after stripping surrounding spaces) ranks higher."""
    return ranks_from_scores([len(c.strip()) for c in completions])


def contains(word: str) -> Ranker:
    """Completions that contain `word` (case-insensitive, whole word) rank 1, the others 2."""
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)

    def rank(prompt: str, completions: Sequence[str]) -> list[int]:
        return ranks_from_scores([float(bool(pattern.search(c))) for c in completions])

    return rank


RANKERS: dict[str, Ranker] = {"shortest": shortest, "longest": longest}
PARAMETRIC: dict[str, Callable[[str], Ranker]] = {"contains": contains}
RULES = {
    "shortest": "fewer characters is better; equal lengths tie",
    "longest": "more characters is better; equal lengths tie",
    "contains": "completions containing {word!r} (any case, whole word) beat the others; the rest tie",
}


def make_ranker(name: str) -> tuple[Ranker, str]:
    """(ranker, its rule in words) for a name such as `shortest` or `contains:Paris`.

    Raises:
        ConfigError: unknown name or missing argument; the message lists the available rankers.
    """
    known = ", ".join([*RANKERS, *(f"{k}:WORD" for k in PARAMETRIC)])
    base, sep, arg = name.partition(":")
    if base in RANKERS and not sep:
        return RANKERS[base], RULES[base]
    if base in PARAMETRIC:
        if not arg.strip():
            raise ConfigError(f"--ranker {name!r} needs a word after the colon, e.g. --ranker {base}:Paris")
        return PARAMETRIC[base](arg.strip()), RULES[base].format(word=arg.strip())
    raise ConfigError(f"--ranker must be one of {known}, got {name!r}")
