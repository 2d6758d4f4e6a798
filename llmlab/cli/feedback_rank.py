"""The terminal UI of `llmlab feedback rank`: one prompt at a time, its completions, and the ranks typed back.

Each accepted answer is saved at once (the whole file rewritten atomically), so a kill at any moment loses at
most the prompt on screen; the same command then resumes at the first prompt without ranks. Typing errors are
explained and the same prompt is asked again; nothing invalid is ever written.
Tests: tests/cli/test_feedback_rank_tui.py (a real pseudo-terminal, a SIGKILL mid-way, and the resume).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.panel import Panel
from rich.text import Text

from llmlab.cli.output import console
from llmlab.errors import DataError
from llmlab.rlhf.preferences import Ranking, Ties, describe_order, parse_ranks
from llmlab.rlhf.records import CompletionSet, ranking_record, write_jsonl

HUMAN = "human"
QUIT = ("q", "quit", "exit")


class RankSession:
    """Ranks the completion sets not yet in `done`, saving `out` after each one."""

    def __init__(
        self,
        sets: Sequence[CompletionSet],
        done: Sequence[Ranking],
        out: str,
        criterion: str | None,
        ties: Ties = "skip",
    ):
        self.sets, self.out, self.criterion, self.ties = list(sets), out, criterion, ties
        self.rankings = list(done)
        for record in self.rankings:
            if record.ranker != HUMAN or record.criterion != criterion:
                raise DataError(
                    f"this record was ranked {who(record.ranker, record.criterion)}, not "
                    f"{who(HUMAN, criterion)}; continue {out} with the same settings, or choose another --out",
                    record.where,
                )

    def run(self) -> int:
        total = len(self.sets)
        if len(self.rankings) == total:
            console.print(f"all {total} prompts are already ranked in {self.out}; nothing to do")
            return 0
        if self.rankings:
            console.print(f"resuming: {len(self.rankings)} of {total} prompts already ranked in {self.out}")
        for index in range(len(self.rankings), total):
            ranks = self._ask(index)
            if ranks is None:
                console.print(
                    f"stopped: {len(self.rankings)} of {total} prompts ranked and saved in {self.out}; "
                    "run the same command to continue"
                )
                return 0
            found = self.sets[index]
            self.rankings.append(Ranking(found.prompt, found.completions, ranks, self.criterion, HUMAN))
            write_jsonl(self.out, [ranking_record(r) for r in self.rankings])
            console.print(f"saved: best first {describe_order(ranks)} ({len(self.rankings)} of {total} done)")
        console.print(
            f"all {total} prompts ranked, saved in {self.out}; next: llmlab feedback pairs {self.out} "
            "--out pairs.jsonl"
        )
        return 0

    def _show(self, index: int) -> None:
        found = self.sets[index]
        criterion = self.criterion or "overall preference"
        console.rule(f"prompt {index + 1} of {len(self.sets)} · criterion: {criterion}")
        # soft_wrap=False: the shared console does not wrap (for streamed text), but panels must.
        console.print(Panel(Text(found.prompt), title="prompt", title_align="left"), soft_wrap=False)
        for number, completion in enumerate(found.completions, start=1):
            body = Text(completion) if completion.strip() else Text("(empty)", style="dim")
            console.print(Panel(body, title=str(number), title_align="left"), soft_wrap=False)
        n = len(found.completions)
        example = " ".join(str(r) for r in _example(n))
        console.print(
            f"Type the rank of each completion in order, 1 = best (e.g. {example}); equal ranks tie; q stops."
        )

    def _ask(self, index: int) -> list[int] | None:
        """The ranks typed for prompt `index`; None when the person stops (q, end of input)."""
        self._show(index)
        n = len(self.sets[index].completions)
        while True:
            try:
                line = console.input("rank> ")
            except EOFError:
                console.print()
                return None
            if line.strip().lower() in QUIT:
                return None
            if not line.strip():
                continue
            try:
                return parse_ranks(line, n, self.ties)
            except DataError as e:
                console.print(Text(f"not saved: {e}"))


def who(ranker: str | None, criterion: str | None) -> str:
    """ "by a person for 'helpfulness'", "by scripted:shortest with no criterion" (for error messages)."""
    name = "a person" if ranker == HUMAN else (ranker or "an unnamed ranker")
    return f"by {name} " + (f"for {criterion!r}" if criterion else "with no criterion")


def _example(n: int) -> list[int]:
    """A sample answer for the hint: 2 1 3 ... (completion 2 best)."""
    return [2, 1, *range(3, n + 1)]
