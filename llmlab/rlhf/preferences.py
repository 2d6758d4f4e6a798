"""Rankings -> preference pairs: the step between people ranking completions and a reward model or DPO.

A prompt with N completions ranked by a person (rank 1 = best) holds N(N-1)/2 comparisons, one for each
pair of completions (InstructGPT, Ouyang et al., 2022, arXiv:2203.02155, section 3.5: "K choose 2"
comparisons per prompt). Each comparison gives reward 1 to the preferred completion and 0 to the other, and
the pair is written with the preferred completion first:

    completions 1, 2, 3 ranked 2, 1, 3  ->  (1 vs 2) rewards (0, 1) -> 2 over 1
                                            (1 vs 3) rewards (1, 0) -> 1 over 3
                                            (2 vs 3) rewards (1, 0) -> 2 over 3

Comparisons are taken in the order of the completions' positions (1-2, 1-3, ..., 2-3, ...), so the output
order is fixed by the input. Rules for imperfect rankings (the reasons are in `validate_ranks`):
- ties: completions with equal ranks make no pair (neither is preferred); `ties="error"` refuses them;
- identical completions (the same text twice) make no pair, whatever their ranks;
- a missing rank (fewer ranks than completions, or `null`), a rank that is not a whole number, or one
  outside 1..N is an error that names the record (`file:line`) and the completion.
Only the order of the ranks matters: ranks 1, 3, 3 and 1, 2, 2 give the same pairs.

Tests: tests/rlhf/test_preferences.py (the mission's worked example exactly, the pair count, every rule).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from llmlab.errors import DataError

Ties = Literal["skip", "error"]
TIES: tuple[Ties, ...] = ("skip", "error")


@dataclass(frozen=True)
class Ranking:
    """One prompt, its completions, and the rank a person (or a scripted stand-in) gave each one (1 = best)."""

    prompt: str
    completions: list[str]
    ranks: list[int]
    criterion: str | None = None
    """What the ranking judged, e.g. "helpfulness"."""
    ranker: str | None = None
    """Who ranked: "human", or "scripted:NAME" for a scripted stand-in for people."""
    where: str | None = field(default=None, compare=False)
    """`file:line` of the record, for error messages."""


@dataclass(frozen=True)
class Comparison:
    """Two completions of one prompt in their original order, with reward 1 for the preferred one and 0 for
    the other; `first` and `second` are 0-based positions in the ranking's completions."""

    first: int
    second: int
    first_reward: int
    second_reward: int


@dataclass(frozen=True)
class PreferencePair:
    """A comparison reordered so that the preferred completion comes first: {"prompt", "chosen", "rejected"}."""

    prompt: str
    chosen: str
    rejected: str

    def to_record(self) -> dict[str, str]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


@dataclass
class PairStats:
    """What `rankings_to_pairs` made and what it left out, and why."""

    rankings: int = 0
    pairs: int = 0
    tied: int = 0
    """Comparisons between completions with equal ranks (no pair)."""
    identical: int = 0
    """Comparisons between two copies of the same text (no pair)."""
    capped: int = 0
    """Pairs beyond the per-ranking limit (`per_prompt`), left out."""


def _where(where: str | None) -> str:
    return f"{where}: " if where else ""


def validate_ranks(ranks: object, n: int, where: str | None = None, ties: Ties = "skip") -> list[int]:
    """Check one record's ranks against its `n` completions; return them as a list of ints.

    Why each rule: a rank list of the wrong length or with a `null` cannot say where the missing completion
    stands; a rank outside 1..N is a typo that would otherwise silently change the order; equal ranks are
    how people say "no preference", so they are kept and make no pair (or refused with `ties="error"`).

    Raises:
        DataError: at `where` (`file:line`), naming the completion and the value, and how to fix it.
    """
    if ties not in TIES:
        raise DataError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    if n < 2:
        raise DataError(
            f"a ranking needs at least 2 completions to compare, got {n}; generate more with -n", where
        )
    if not isinstance(ranks, list):
        raise DataError(f"'ranks' must be a list of integers (1 = best), got {type(ranks).__name__}", where)
    if len(ranks) != n:
        raise DataError(
            f"{len(ranks)} ranks for {n} completions; give every completion a rank from 1 (best) to {n}",
            where,
        )
    for i, rank in enumerate(ranks, start=1):
        if rank is None:
            raise DataError(f"completion {i} has no rank (null); give it a rank from 1 to {n}", where)
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise DataError(f"completion {i} has rank {rank!r}; ranks are whole numbers from 1 to {n}", where)
        if not 1 <= rank <= n:
            raise DataError(
                f"completion {i} has rank {rank}, outside 1..{n}; 1 is the best, {n} the worst", where
            )
    if ties == "error":
        for rank, count in sorted(_counts(ranks).items()):
            if count > 1:
                holders = ", ".join(str(i + 1) for i, r in enumerate(ranks) if r == rank)
                raise DataError(
                    f"rank {rank} is given to completions {holders}; give each completion its own rank, or "
                    "allow ties (--ties skip: tied completions make no pair)",
                    where,
                )
    return list(ranks)


def _counts(ranks: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for rank in ranks:
        counts[rank] = counts.get(rank, 0) + 1
    return counts


def comparisons(ranks: Sequence[int]) -> list[Comparison]:
    """Every pair of positions (i < j) in order, with reward 1 for the better rank, 0 for the other.

    Tied positions are left out (no preference to learn from).
    """
    out = []
    for i, j in itertools.combinations(range(len(ranks)), 2):
        if ranks[i] == ranks[j]:
            continue
        first_wins = ranks[i] < ranks[j]
        out.append(Comparison(i, j, int(first_wins), int(not first_wins)))
    return out


def to_pair(prompt: str, completions: Sequence[str], comparison: Comparison) -> PreferencePair:
    """Reorder a comparison so that the completion with reward 1 comes first."""
    winner, loser = (
        (comparison.first, comparison.second)
        if comparison.first_reward > comparison.second_reward
        else (comparison.second, comparison.first)
    )
    return PreferencePair(prompt, completions[winner], completions[loser])


def ranking_to_pairs(
    ranking: Ranking, ties: Ties = "skip", stats: PairStats | None = None, per_prompt: int = 0
) -> list[PreferencePair]:
    """The preference pairs of one ranking: N(N-1)/2 of them when no ranks tie and no texts repeat.

    `per_prompt` > 0 keeps at most that many, those whose ranks differ most (the best against the worst
    first; equal gaps in the completions' order): each pair costs the same training time, and the widest
    gaps say the most about what the ranker prefers."""
    if per_prompt < 0:
        raise DataError(f"--per-prompt must be 0 (every pair) or more, got {per_prompt}")
    ranks = validate_ranks(ranking.ranks, len(ranking.completions), ranking.where, ties)
    found = comparisons(ranks)
    pairs = [(to_pair(ranking.prompt, ranking.completions, c), abs(ranks[c.first] - ranks[c.second]))
             for c in found]  # fmt: skip
    distinct = [(p, gap) for p, gap in pairs if p.chosen != p.rejected]
    kept = [p for p, _ in distinct]
    if per_prompt:  # the widest gaps (a stable sort keeps the order within a gap), then back in order
        widest = sorted(range(len(distinct)), key=lambda i: -distinct[i][1])[:per_prompt]
        kept = [kept[i] for i in sorted(widest)]
    if stats is not None:
        total = len(ranks) * (len(ranks) - 1) // 2
        stats.rankings += 1
        stats.tied += total - len(found)
        stats.identical += len(pairs) - len(distinct)
        stats.capped += len(distinct) - len(kept)
        stats.pairs += len(kept)
    return kept


def rankings_to_pairs(
    rankings: Iterable[Ranking], ties: Ties = "skip", per_prompt: int = 0
) -> tuple[list[PreferencePair], PairStats]:
    """All pairs of all rankings (at most `per_prompt` each when > 0), in input order, and counts of what
    was left out."""
    stats = PairStats()
    pairs = [pair for ranking in rankings for pair in ranking_to_pairs(ranking, ties, stats, per_prompt)]
    return pairs, stats


def parse_ranks(text: str, n: int, ties: Ties = "skip") -> list[int]:
    """Ranks typed by a person, e.g. "2 1 3" or "2,1,3": the rank of completion 1, then of 2, and so on.

    Raises:
        DataError: the input is not N whole numbers in 1..N (or has ties when they are refused).
    """
    words = text.replace(",", " ").split()
    try:
        ranks = [int(w) for w in words]
    except ValueError:
        bad = next(w for w in words if not w.lstrip("-").isdigit())
        raise DataError(
            f"{bad!r} is not a rank; type {n} whole numbers, the rank of each completion in order (1 = best)"
        ) from None
    return validate_ranks(ranks, n, None, ties)


def describe_order(ranks: Sequence[int]) -> str:
    """The ranking as a human reads it, best first: ranks 2 1 3 -> "2 > 1 > 3"; ties with "=": "1 = 3 > 2"."""
    groups: dict[int, list[int]] = {}
    for position, rank in enumerate(ranks, start=1):
        groups.setdefault(rank, []).append(position)
    return " > ".join(" = ".join(str(p) for p in groups[rank]) for rank in sorted(groups))
