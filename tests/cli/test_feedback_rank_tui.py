"""The ranking terminal UI driven for real: `llmlab feedback rank` in a pseudo-terminal, a person's answers
typed in, a SIGKILL while it waits for the second answer, then a resume that keeps what was saved."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LLMLAB = Path(sys.executable).parent / "llmlab"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SETS = [
    {
        "prompt": "My house is too hot",
        "completions": ["Open the windows at night.", "Close the curtains.", "Move."],
    },
    {"prompt": "Capital of France?", "completions": ["Paris.", "Lyon.", "It is Paris."]},
    {"prompt": "Name a colour.", "completions": ["Blue.", "Seven."]},
]


class Terminal:
    """A child process on a pseudo-terminal: read until a pattern shows up, type lines, kill it."""

    def __init__(self, argv: list[str], cwd: Path):
        self.master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "80", "LINES": "40", "TERM": "xterm", "NO_COLOR": "1"}
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)  # fmt: skip
        os.close(slave)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 120.0) -> str:
        """Everything read up to and including the first match of `pattern` (ANSI codes removed)."""
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.seen)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; the screen shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096).decode("utf-8", "replace")
                except OSError:  # the child closed the terminal
                    chunk = ""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}:\n{self.seen}")
                self.seen += ANSI.sub("", chunk).replace("\r\n", "\n")
        shown, self.seen = self.seen[: match.end()], self.seen[match.end() :]
        return shown

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        code = self.proc.wait(timeout=60)
        os.close(self.master)
        return code


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "completions.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SETS))
    return tmp_path


def ranked(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "ranked.jsonl").read_text().splitlines()]


def test_rank_kill_and_resume(folder: Path) -> None:
    argv = [
        str(LLMLAB),
        "feedback",
        "rank",
        "completions.jsonl",
        "--out",
        "ranked.jsonl",
        "--criterion",
        "helpfulness",
    ]
    first = Terminal(argv, folder)
    screen = first.expect(r"rank> ")
    assert "prompt 1 of 3 · criterion: helpfulness" in screen
    assert "My house is too hot" in screen and "Close the curtains." in screen
    assert "Type the rank of each completion in order, 1 = best (e.g. 2 1 3)" in screen
    first.type("2 1 3")
    screen = first.expect(r"rank> ")
    assert "saved: best first 2 > 1 > 3 (1 of 3 done)" in screen and "prompt 2 of 3" in screen
    assert [r["ranks"] for r in ranked(folder)] == [[2, 1, 3]]
    os.killpg(first.proc.pid, signal.SIGKILL)  # killed while waiting for the second answer
    assert first.close() == -signal.SIGKILL
    saved = ranked(folder)
    assert saved == [{**SETS[0], "ranks": [2, 1, 3], "criterion": "helpfulness", "ranker": "human"}]

    second = Terminal(argv, folder)
    screen = second.expect(r"rank> ")
    assert "resuming: 1 of 3 prompts already ranked in ranked.jsonl" in screen
    assert "prompt 2 of 3" in screen and "Capital of France?" in screen and "My house" not in screen
    second.type("1 1 9")
    assert "not saved: completion 3 has rank 9, outside 1..3" in second.expect(r"rank> ")
    second.type("1 3 2")
    screen = second.expect(r"rank> ")
    assert "saved: best first 1 > 3 > 2 (2 of 3 done)" in screen and "Name a colour." in screen
    second.type("q")
    assert "stopped: 2 of 3 prompts ranked and saved in ranked.jsonl" in second.expect(r"to continue")
    assert second.close() == 0

    third = subprocess.run(argv, cwd=folder, input="1 2\n", capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "resuming: 2 of 3" in third.stdout
    assert "all 3 prompts ranked, saved in ranked.jsonl" in third.stdout
    assert ranked(folder)[0] == saved[0]  # the first session's answer survived the kill and two resumes
    assert [r["ranks"] for r in ranked(folder)] == [[2, 1, 3], [1, 3, 2], [1, 2]]
