"""The user guide's shell examples print what the guide says they print.

Every ```-fenced block of docs/*.md is read: a line `$ llmlab ...` is a command, and the lines after it, up to
the next `$ ` line or the end of the block, are its output. `$ cat FILE` and `$ paste A B` blocks show the
input files a page uses; `$ ls DIR` shows a folder the page starts from, kept in tests/fixtures/docs/PAGE/;
a `tests/...` file named on a command line is copied from the repository. A page's commands run with the real
`llmlab` console script, in page order (later ones read what earlier ones wrote), in a temporary folder with
`LLMLAB_HOME` inside it and an 80-column terminal.

- Fast tier: the commands that load no model (metrics, `models list` and `recommend`, bad flags and bad files,
  which are refused before a model loads), one test each.
- Slow tier: the commands that load the packaged SmolLM2 or MiniLM, and those that read what they wrote
  (`eval compare`, `rag list`), one test per page. All of them decode greedily or with a fixed seed. The
  outputs are those of this project's machine: int8 decoding (the default on CPUs with VNNI) may pick another
  token elsewhere.

Compared: standard output; standard error instead where the guide shows an `error:` line; both together, with
the typed lines echoed as a terminal does, for the `chat` REPLs. A command shown without output must succeed.
In the guide an output line `...` stands for any number of lines, and `...` inside a line for any text.
`normalise` is the one place that hides what varies from run to run.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
LLMLAB = Path(sys.executable).parent / "llmlab"
MODEL = "smollm2-135m-instruct"
DOCS_CWD = "/tmp/llmlab-rag-demo"  # where rag.md says its examples ran; no other page prints a path
LLMLAB_LINE = re.compile(r"([A-Z_]+=\S* )*llmlab ")  # `llmlab ARGS`, perhaps after `COLUMNS=100 `

# Command prefixes that load a packaged model: slow, except examples that show an error, raised before loading.
MODEL_VERBS = (
    "generate", "chat", "ask", "demo", "rag ask", "rag chat", "rag ingest", "rag search", "eval run",
    "eval metric perplexity", "models info",
)  # fmt: skip
# Command prefixes that read what a slow example wrote (eval run's JSON, rag ingest's store): always slow.
AFTER_MODEL_VERBS = ("eval compare", "rag list")

OWN_FILES = "shows the flags on the reader's own data set and LoRA adapter, which the guide does not provide"
# Examples that are not run, with the reason. Keep this list short.
NOT_RUN = {
    "llmlab eval run --model smollm2-135m-instruct --task qa --data qa.jsonl --name base --output base.json": OWN_FILES,
    "llmlab eval run --model smollm2-135m-instruct --adapter runs/lora-qa --task qa --data qa.jsonl --name lora "
    "--output lora.json": OWN_FILES,
    "llmlab eval compare base.json lora.json": OWN_FILES,
}


@dataclass(frozen=True)
class Example:
    """One `$ llmlab ...` line of the guide and the output shown under it."""

    page: str
    line: int  # 1-based, of the `$ llmlab` line
    command: str  # the text after `$ `: `llmlab ARGS`, perhaps after settings such as `COLUMNS=100`
    output: str  # the lines shown under it, each ending in a newline; "" when none are shown

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.command)
        return words[words.index("llmlab") + 1 :]

    @property
    def env(self) -> dict[str, str]:
        words = shlex.split(self.command)
        return dict(word.split("=", 1) for word in words[: words.index("llmlab")])

    @property
    def shows_error(self) -> bool:
        return self.output.startswith("error:")

    @property
    def interactive(self) -> bool:
        return self.argv[0] == "chat" or self.argv[:2] == ["rag", "chat"]

    @property
    def slow(self) -> bool:
        words = " ".join(self.argv) + " "
        if any(words.startswith(verb + " ") for verb in AFTER_MODEL_VERBS):
            return True
        return not self.shows_error and any(words.startswith(verb + " ") for verb in MODEL_VERBS)


@dataclass
class Page:
    """A page's examples, the input files it shows, and the folder listings it shows."""

    name: str
    examples: list[Example] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    listings: dict[str, list[str]] = field(default_factory=dict)

    def add_file(self, name: str, text: str, line: int) -> None:
        if self.files.get(name, text) != text:
            raise ValueError(f"{self.name}:{line}: {name} is shown twice with different contents")
        self.files[name] = text


def fenced_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the block's first line, its lines) for every ```-fenced block."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            if current is None:
                current, start = [], number + 1
            else:
                blocks.append((start, current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def read_page(path: Path) -> Page:
    page = Page(path.name)
    for start, lines in fenced_blocks(path.read_text(encoding="utf-8")):
        commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
        if not commands:
            continue
        for i, end in zip(commands, [*commands[1:], len(lines)], strict=True):
            shown = "".join(line + "\n" for line in lines[i + 1 : end])
            _add_command(page, start + i, lines[i][2:], shown)
    return page


def _add_command(page: Page, line: int, command: str, shown: str) -> None:
    words = shlex.split(command)
    if LLMLAB_LINE.match(command):
        page.examples.append(Example(page.name, line, command, shown))
    elif words[0] == "cat" and len(words) == 2:
        page.add_file(words[1], shown, line)
    elif words[0] == "paste":
        rows = [row.split("\t") for row in shown.splitlines()]
        for column, name in enumerate(words[1:]):
            page.add_file(name, "".join(row[column] + "\n" for row in rows), line)
    elif words[0] == "ls" and len(words) == 2:
        page.listings[words[1]] = shown.split()
    else:
        raise ValueError(f"{page.name}:{line}: `$ {command}`: only llmlab, cat FILE, paste and ls are known")


PAGES = {path.name: read_page(path) for path in sorted(DOCS.glob("*.md"))}
EXAMPLES = [e for page in PAGES.values() for e in page.examples]
FAST = [e for e in EXAMPLES if not e.slow and e.command not in NOT_RUN]
SLOW_PAGES = sorted({e.page for e in EXAMPLES if e.slow and e.command not in NOT_RUN})


def prepare(page: Page, folder: Path) -> None:
    """Fill `folder` with what the page's commands read: its fixture folder, shown files, repository files."""
    fixtures = REPO / "tests" / "fixtures" / "docs" / Path(page.name).stem
    if fixtures.is_dir():
        shutil.copytree(fixtures, folder, dirs_exist_ok=True)
    for name, text in page.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    for arg in (arg for e in page.examples for arg in e.argv if arg.startswith("tests/")):
        if (REPO / arg).is_file():
            (folder / arg).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / arg, folder / arg)


def environment(folder: Path, cache: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    }
    env.update(
        COLUMNS="80",
        # One thread: where other work keeps the cores busy, two threads that wait for each other at every
        # layer decoded 0.6 tokens/s instead of 45 (2-core machine); the guide's outputs are the same.
        OMP_NUM_THREADS="1",
        LLMLAB_HOME=str(folder / "home"),
        LLMLAB_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def normalise(text: str, folder: Path) -> str:
    """What varies from run to run: the temporary folder, and durations ("written in 0.1 s", "28.5 s").

    Trailing spaces are dropped too: the guide's Markdown does not keep them.
    """
    text = text.replace(str(folder), DOCS_CWD)
    text = re.sub(r"\b\d+\.\d+ s\b", "<seconds> s", text)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def matches(expected: str, actual: str) -> bool:
    """True when `actual` is `expected` with its elisions filled: a line `...` is any lines, `...` any text."""
    pattern = "".join(
        r"(?:.*\n)*?" if line.strip() == "..." else ".*?".join(map(re.escape, line.split("..."))) + r"\n"
        for line in expected.splitlines()
    )
    return re.fullmatch(pattern, actual) is not None


def run_example(example: Example, folder: Path, env: dict[str, str]) -> str | None:
    """Run one example in `folder`; None when it prints what the guide shows, else what differs."""
    typed = [line[len("you> ") :] for line in example.output.splitlines() if line.startswith("you> ")]
    proc = subprocess.run(
        [str(LLMLAB), *example.argv],
        cwd=folder,
        env=env | example.env,
        input="".join(line + "\n" for line in typed),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if example.interactive else subprocess.PIPE,
        text=True,
        timeout=600,
    )
    if example.interactive:
        # Piped input is not echoed: each typed line goes after its prompt, as a terminal shows it.
        pieces = proc.stdout.split("you> ")
        actual = pieces[0] + "".join(
            f"you> {line}\n{piece}" for line, piece in zip(typed, pieces[1:], strict=False)
        )
    else:
        actual = proc.stderr if example.shows_error else proc.stdout
    status = 2 if example.shows_error else 0
    if proc.returncode != status:
        return f"{example}: `{example.command}` exited {proc.returncode}, not {status}:\n{proc.stderr}"
    expected, actual = normalise(example.output, folder), normalise(actual, folder)
    if not example.output or matches(expected, actual):
        return None
    diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "guide", "llmlab", lineterm="")
    return f"{example}: `{example.command}` printed something else:\n" + "\n".join(diff)


def test_every_llmlab_line_is_an_example() -> None:
    """A fence the parser misreads would silently drop examples."""
    lines = [line for page in DOCS.glob("*.md") for line in page.read_text(encoding="utf-8").splitlines()]
    shown = sum(line.startswith("$ ") and LLMLAB_LINE.match(line[2:]) is not None for line in lines)
    assert len(EXAMPLES) == shown > 0
    assert set(NOT_RUN) <= {e.command for e in EXAMPLES}, "a NOT_RUN entry names no example of the guide"


@pytest.mark.parametrize(
    ("page", "folder"), [(p.name, d) for p in PAGES.values() for d in p.listings], ids=str
)
def test_listed_folders_are_the_fixtures(page: str, folder: str, tmp_path: Path) -> None:
    prepare(PAGES[page], tmp_path)
    assert sorted(p.name for p in (tmp_path / folder).iterdir()) == PAGES[page].listings[folder]


@pytest.mark.parametrize("example", FAST, ids=str)
def test_fast_example(example: Example, tmp_path: Path) -> None:
    prepare(PAGES[example.page], tmp_path)
    problem = run_example(example, tmp_path, environment(tmp_path, tmp_path / "cache"))
    assert problem is None, problem


@pytest.fixture(scope="session")
def model_cache(llmlab_cache: Path) -> Path:
    """The session's model cache, SmolLM2 converted and loaded from it once (`models info` shows both times)."""
    from llmlab.models import load_model
    from llmlab.models.gguf_cache import cache_folder, load_timings
    from llmlab.models.registry import resolve

    folder = cache_folder(resolve(MODEL).path)
    for _ in range(2):  # a fresh cache: the first load converts, the second loads the converted folder
        if "cached_load_seconds" not in load_timings(folder):
            load_model(MODEL, device="cpu")
    return llmlab_cache


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_slow_examples(page: str, tmp_path: Path, model_cache: Path) -> None:
    prepare(PAGES[page], tmp_path)
    env = environment(tmp_path, model_cache)
    examples = [e for e in PAGES[page].examples if e.slow and e.command not in NOT_RUN]
    problems = [p for e in examples if (p := run_example(e, tmp_path, env)) is not None]
    assert not problems, "\n\n".join(problems)
