"""Scripted rankers: stand-ins for people, with a stated rule, for tests, demos and synthetic preferences.

They are NOT human feedback. A ranking they write is labelled `"ranker": "scripted:NAME"` so that nobody
mistakes it for a person's judgement. Each takes a prompt and its completions and returns one rank per
completion (1 = best); equal ranks are ties and make no preference pair.

    shortest        fewer characters is better (equal lengths tie)
    longest         more characters is better (equal lengths tie)
    contains:WORD   completions containing WORD (case-insensitive, as a whole word) rank 1, the others 2
    reference:FILE  completions containing the prompt's reference answer (from FILE.jsonl, {"prompt",
                    "reference"} a line) beat the others, the shorter first; the others tie
    f1:FILE         a higher SQuAD token F1 against the prompt's reference answer (FILE as above) is better;
                    equal F1 ties (so completions sharing no word with the reference all tie)

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


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def rank_by_reference(references: Sequence[str], completions: Sequence[str]) -> list[int]:
    """The `reference` rule (EXPLAINED["reference"]) for one prompt, with any of `references` counting: found in
    any case, spaces collapsed, not inside a longer word ("no" is not found in "not"); length is counted
    stripped. The misses tie because a shorter wrong answer is not better: with "shorter" among them too, DPO
    learned to answer "1" to everything."""
    patterns = [re.compile(rf"(?<!\w){re.escape(_normalise(a))}(?!\w)") for a in references]
    hits = [any(p.search(_normalise(c)) for p in patterns) for c in completions]
    # a hit beats any miss; among hits the shorter wins; misses tie (a short wrong answer is no better)
    return ranks_from_scores(
        [1e9 - len(c.strip()) if hit else 0.0 for hit, c in zip(hits, completions, strict=True)]
    )


def reference(path: str) -> Ranker:
    """The `reference` ranker (`rank_by_reference`) with the prompts' references read from `path`, a JSONL file
    of {"prompt", "reference"} records (a reference may be a list: any of them counts)."""
    return _with_references(path, "reference", rank_by_reference)


def rank_by_f1(references: Sequence[str], completions: Sequence[str]) -> list[int]:
    """The `f1` rule (EXPLAINED["f1"]) for one prompt, against the best-matching of `references`. It is
    graded: a short answer that is the reference beats a sentence that contains it, which beats one sharing a
    word; and a shorter wrong answer is not better."""
    from llmlab.evaluation.metrics.f1 import f1_score

    return ranks_from_scores([round(f1_score(c, references), 6) for c in completions])


def f1(path: str) -> Ranker:
    """The `f1` ranker (`rank_by_f1`) with the prompts' references read from `path` as for `reference`."""
    return _with_references(path, "f1", rank_by_f1)


def _with_references(
    path: str, name: str, rule: Callable[[Sequence[str], Sequence[str]], list[int]]
) -> Ranker:
    """A ranker that applies `rule(references, completions)` with the prompt's references read from `path`."""
    references = _read_references(path, name)

    def rank(prompt: str, completions: Sequence[str]) -> list[int]:
        if prompt not in references:
            raise ConfigError(f"{path}: no reference for the prompt {prompt[:60]!r}; add a {{\"prompt\", "
                              f"\"reference\"}} line for every prompt that is ranked")  # fmt: skip
        return rule(references[prompt], completions)

    return rank


def _read_references(path: str, name: str = "reference") -> dict[str, list[str]]:
    import json
    from pathlib import Path

    if not Path(path).is_file():
        raise ConfigError(f"--ranker {name}:{path}: no such file; give a JSONL file of "
                          '{"prompt", "reference"} records')  # fmt: skip
    found: dict[str, list[str]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            ref = record["reference"]
            found[record["prompt"]] = [ref] if isinstance(ref, str) else [str(r) for r in ref]
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f'{path}:{number}: expected {{"prompt": ..., "reference": ...}}, got {line[:80]!r} '
                              f"({error.__class__.__name__}); fix or remove the line") from None  # fmt: skip
    return found


RANKERS: dict[str, Ranker] = {"shortest": shortest, "longest": longest}
PARAMETRIC: dict[str, Callable[[str], Ranker]] = {"contains": contains, "reference": reference, "f1": f1}
RULES = {
    "shortest": "fewer characters is better; equal lengths tie",
    "longest": "more characters is better; equal lengths tie",
    "contains": "completions containing {word!r} (any case, whole word) beat the others; the rest tie",
    "reference": "completions containing the prompt's reference answer in {word} (any case, whole words) beat the others; "
    "among those, fewer characters is better; the others tie",
    "f1": "a higher SQuAD token F1 against the prompt's reference answer in {word} is better; equal F1 ties "
    "(completions sharing no word with it all tie)",
}


EXPLAINED = {
    "f1": "a completion with a higher SQuAD token F1 against the question's reference answer (the words it shares "
    "with it, against its length and the reference's) is better; equal F1 ties, so completions that share no "
    "word with the reference all tie",
    "reference": "a completion that contains the question's reference answer (any case, whole words) beats one "
    "that does not, and among those the shorter is better; completions without it tie",
}
"""The rules of the rankers that read reference answers, in full (the flywheel's report quotes them): the one
statement of each rule, which RULES shortens for the log and rank_by_f1 / rank_by_reference apply."""

CRITERIA = {
    "f1": "token F1 against the reference answer",
    "reference": "contains the reference answer, then shorter",
}
"""The criterion the rankings of each of those rankers record (the flywheel's `feedback rank --criterion`)."""


def make_ranker(name: str) -> tuple[Ranker, str]:
    """(ranker, its rule in words) for a name such as `shortest` or `contains:Paris`.

    Raises:
        ConfigError: unknown name or missing argument; the message lists the available rankers.
    """
    known = ", ".join([*RANKERS, "contains:WORD", "reference:FILE", "f1:FILE"])
    base, sep, arg = name.partition(":")
    if base in RANKERS and not sep:
        return RANKERS[base], RULES[base]
    if base in PARAMETRIC:
        if not arg.strip():
            raise ConfigError(f"--ranker {name!r} needs a word after the colon, e.g. --ranker {base}:Paris")
        return PARAMETRIC[base](arg.strip()), RULES[base].format(word=arg.strip())
    raise ConfigError(f"--ranker must be one of {known}, got {name!r}")
