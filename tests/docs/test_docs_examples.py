"""The user guide's shell examples print what the guide says they print.

Every ```-fenced block of docs/*.md is read: a line `$ llmlab ...` is a command, and the lines after it, up to
the next `$ ` line or the end of the block, are its output. `$ cat FILE` and `$ paste A B` blocks show the
input files a page uses; `$ ls DIR` shows a folder the page starts from, kept in tests/fixtures/docs/PAGE/;
a `tests/...` file or a `docs/` or `bench/data/` folder named on a command line is copied from the repository.
A page's commands run with the real `llmlab` console script, in page order (later ones read what earlier ones
wrote), in a temporary folder with `LLMLAB_HOME` inside it and an 80-column terminal.

- Fast tier: the commands that load no packaged model (metrics, `models list` and `recommend`, bad flags and
  bad files, which are refused before a model loads, training and generating with tiny models), one test each.
- Slow tier: the commands that load the packaged SmolLM2 or MiniLM, and those that read what they wrote
  (`eval compare`, `rag list`), and examples that share a folder (one writes it with `--out`, a later one
  reads it), one test per page. All of them decode greedily or with a fixed seed.

Compared: standard output; standard error instead where the guide shows an `error:` line; both together, with
the typed lines echoed as a terminal does, for the `chat` REPLs. A command shown without output must succeed.
`normalise` is the one place that hides what varies from run to run (temporary folder, durations).

What a model prints differs from one CPU to another (AMD or Intel; AVX2, AVX-512 or AMX kernels add in other
orders; a 135M model's greedy choice flips on such differences), so the guide asserts only what is stable.
Writing an example whose output comes from a model, use these, and say next to the example that the text a
small model generates can differ from one CPU to another:

1. `...` wildcards: an output line `...` stands for any number of lines, and `...` inside a line for any text.
   Use them for model text inside output that has a fixed structure (JSON fields, tables), and keep the
   stable parts: `"text": "...Tokyo...",`, `"completion_tokens": ...,`, `"support": 0.7...,` (digits next
   to `...` are a prefix or suffix, compared as text).
2. Numbers within a tolerance: in the output of an example that loads a model (the slow tier), every other
   number is compared as a number, to a relative tolerance of `RTOL` (0.1%): `mean_nll: 3.2875161006532867`
   matches 3.287517284524852, and a perplexity of 26.78 matches 26.79. The text around the numbers must
   match exactly. Fast-tier outputs (metrics, errors, listings) are compared as text, digit for digit.
3. `<!-- varies: "Tokyo", "Sources", not "5." -->`: an HTML comment (invisible on the rendered page) on the
   line just above a fence says that the outputs of the commands in that block are model text shown as an
   example. For those commands the test checks that the command exits as the guide shows, that it prints
   something when the guide shows output, that the output contains every quoted fragment and none of those
   after `not` (`<!-- varies -->` with no fragment: only that it succeeds and prints). Use it for free text
   (a story, a sampled sentence, an answer with its sources, a REPL session) and pick fragments that hold on
   every CPU: the word the question asks for, a cited source, the fixed lines around the text.
4. `<!-- varies: quote, "Sources" -->`: as 3, and the answer (what is printed before the first blank line)
   must be a verbatim quote of what follows it (the snippet under its source), whitespace aside: the
   property of `--answer-style extractive`, whichever span the model picks on a given CPU.

Prefer prompts whose answer holds across CPUs: with int8 weights SmolLM2 answers "What is the capital of
Japan?" with Tokyo under every kernel setting tried, but France gets "Paris" or a string of French words.

Exact text is compared only where it is deterministic across machines: output that does not come from a
model's floating-point arithmetic (metrics, file listings, errors, token counts of a fixed prompt, search
ranks). `make test-isa` runs the slow examples again with PyTorch's and oneDNN's kernels limited to AVX2
(`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, as on a CPU without AVX-512): the check that an example
holds on another CPU.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
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
RTOL = 1e-3  # relative tolerance for the numbers a model command prints (rule 2 of the docstring)
NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\.?\d)")
VARIES = re.compile(r"<!--\s*varies\b(.*?)-->")  # rule 3: `<!-- varies: "fragment", ... -->` above a fence
FRAGMENT = re.compile(r'(not\s+)?"([^"]*)"')


@dataclass(frozen=True)
class Varies:
    """The fragments of a `<!-- varies -->` comment: what the output must contain, and must not."""

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    quote: bool = False  # rule 4: the answer is quoted verbatim in the output after it

    @classmethod
    def parse(cls, text: str) -> Varies:
        found = FRAGMENT.findall(text)
        quote = re.search(r"\bquote\b", FRAGMENT.sub("", text)) is not None
        return cls(tuple(f for neg, f in found if not neg), tuple(f for neg, f in found if neg), quote)


# Command prefixes that load a packaged model: slow, except examples that show an error, raised before loading.
MODEL_VERBS = (
    "generate", "chat", "ask", "demo", "rag ask", "rag chat", "rag ingest", "rag search", "eval run",
    "eval metric perplexity", "models info", "feedback generate", "peft merge", "peft params",
    "agent run",
)  # fmt: skip
# Command prefixes that read what a slow example wrote (eval run's JSON, rag ingest's store): always slow.
AFTER_MODEL_VERBS = ("eval compare", "rag list", "peft export", "peft import")
PACKAGED = ("smollm2-135m-instruct", "minilm-l6")

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
    varies: Varies | None = None  # the fragments of a `<!-- varies -->` block; None: compare the output
    chained: bool = False  # it reads a run folder (`--out`) another example wrote, or writes one that is read

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
        """Loads a packaged model (named, or by default), or reads what such an example wrote; an example
        showing an error is refused before any model loads. `--model FOLDER` of a tiny model is fast, unless
        another example wrote the folder: examples that depend on each other run in the page's slow test."""
        words = " ".join(self.argv) + " "
        if self.chained or any(words.startswith(verb + " ") for verb in AFTER_MODEL_VERBS):
            return True
        if self.shows_error:
            return False
        if any(arg in PACKAGED for arg in self.argv):
            return True
        model = self.argv[self.argv.index("--model") + 1] if "--model" in self.argv[:-1] else None
        return model is None and any(words.startswith(verb + " ") for verb in MODEL_VERBS)


@dataclass
class Page:
    """A page's examples, the input files it shows, and the folder listings it shows."""

    name: str
    examples: list[Example] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    listings: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)  # `--out` folder -> index of the example writing it

    def add_file(self, name: str, text: str, line: int) -> None:
        if self.files.get(name, text) != text:
            raise ValueError(f"{self.name}:{line}: {name} is shown twice with different contents")
        self.files[name] = text


def fenced_blocks(text: str) -> list[tuple[int, list[str], Varies | None]]:
    """(line number of the block's first line, its lines, its `varies` fragments) for every ```-fenced block.

    The fragments are those of a `<!-- varies: "a", "b" -->` comment on the line above the fence, else None.
    """
    blocks: list[tuple[int, list[str], Varies | None]] = []
    current: list[str] | None = None
    previous, varies = "", None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            if current is None:
                current, start = [], number + 1
                found = VARIES.fullmatch(previous.strip())
                varies = None if found is None else Varies.parse(found.group(1))
            else:
                blocks.append((start, current, varies))
                current = None
        elif current is not None:
            current.append(line)
        previous = line
    return blocks


def read_page(path: Path) -> Page:
    page = Page(path.name)
    for start, lines, varies in fenced_blocks(path.read_text(encoding="utf-8")):
        commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
        if not commands:
            continue
        for i, end in zip(commands, [*commands[1:], len(lines)], strict=True):
            shown = "".join(line + "\n" for line in lines[i + 1 : end])
            _add_command(page, start + i, lines[i][2:], shown, varies)
    return page


def _add_command(page: Page, line: int, command: str, shown: str, varies: Varies | None) -> None:
    words = shlex.split(command)
    if LLMLAB_LINE.match(command):
        example = Example(page.name, line, command, shown, varies)
        argv = example.argv
        out = argv.index("--out") + 1 if "--out" in argv[:-1] else None
        read = [
            page.outputs[a.rstrip("/")]
            for i, a in enumerate(argv)
            if i != out and a.rstrip("/") in page.outputs
        ]
        if read:  # this example and the ones that wrote what it reads run in order, in the slow test
            example = dataclasses.replace(example, chained=True)
            for i in read:
                page.examples[i] = dataclasses.replace(page.examples[i], chained=True)
        if out is not None:
            page.outputs[argv[out].rstrip("/")] = len(page.examples)
        page.examples.append(example)
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
    for arg in (arg for e in page.examples for arg in e.argv if arg.startswith(("docs/", "bench/data/"))):
        if (REPO / arg).is_dir():  # a corpus of the repository, e.g. `--data docs/`
            shutil.copytree(REPO / arg, folder / arg, dirs_exist_ok=True)


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
    """What varies from run to run: the temporary folder, and durations ("written in 0.1 s", "28.5 s"), with
    the spaces that pad them in a table cell (a 12.3 s load is one character wider than a 1.3 s one).

    Trailing spaces are dropped too: the guide's Markdown does not keep them.
    """
    text = text.replace(str(folder), DOCS_CWD)
    text = re.sub(r"\b\d+\.\d+ s\b( +(?=│))?", lambda m: "<seconds> s" + (" " if m.group(1) else ""), text)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def matches(expected: str, actual: str, rtol: float | None = None) -> bool:
    """True when `actual` is `expected` with its elisions filled: a line `...` is any lines, `...` any text.

    With `rtol`, each number of `expected` not next to a `...` matches any number within `rtol` of it.
    """
    want, got = expected.splitlines(), actual.splitlines()

    @functools.cache
    def match(i: int, j: int) -> bool:  # want[i:] matches got[j:]
        if i == len(want):
            return j == len(got)
        if want[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and line_matches(want[i], got[j], rtol) and match(i + 1, j + 1)

    return match(0, 0)


def line_matches(expected: str, actual: str, rtol: float | None) -> bool:
    """One line: `...` is any text; with `rtol`, numbers are compared as numbers (see `matches`)."""
    pattern, numbers = [], []
    pieces = expected.split("...")
    for k, piece in enumerate(pieces):
        start = 0
        for found in NUMBER.finditer(piece) if rtol is not None else ():
            by_wildcard = (found.start() == 0 and k > 0) or (
                found.end() == len(piece) and k < len(pieces) - 1
            )
            if not by_wildcard:  # digits next to `...` are a prefix or suffix: text
                pattern += [re.escape(piece[start : found.start()]), "(" + NUMBER.pattern + ")"]
                numbers.append(float(found.group()))
                start = found.end()
        pattern.append(re.escape(piece[start:]))
        if k < len(pieces) - 1:
            pattern.append(".*?")
    found_line = re.fullmatch("".join(pattern), actual)
    if found_line is None:
        return False
    return all(
        abs(float(value) - number) <= (rtol or 0.0) * abs(number)
        for value, number in zip(found_line.groups(), numbers, strict=True)
    )


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
    if example.varies is not None:
        return varied_output_problem(example, actual)
    if not example.output or matches(expected, actual, RTOL if example.slow else None):
        return None
    diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "guide", "llmlab", lineterm="")
    return f"{example}: `{example.command}` printed something else:\n" + "\n".join(diff)


def varied_output_problem(example: Example, actual: str) -> str | None:
    """A `<!-- varies -->` example: something printed when the guide shows output, every fragment it names,
    and none of those it names after `not`."""
    varies = example.varies or Varies()
    problems = [f"no {f!r}" for f in varies.present if f not in actual]
    problems += [f"{f!r}" for f in varies.absent if f in actual]
    if example.output.strip() and not actual.strip():
        problems.insert(0, "nothing")
    answer, _, rest = actual.partition("\n\n")
    if varies.quote and (not answer.strip() or " ".join(answer.split()) not in " ".join(rest.split())):
        problems.append("an answer that is not quoted verbatim in its source")
    if not problems:
        return None
    return f"{example}: `{example.command}` printed {', '.join(problems)}:\n{actual}"


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


def test_durations_and_their_padding_are_normalised(tmp_path: Path) -> None:
    """models.md failed when a cached load took 12.3 s instead of 1.3 s: the table cell's padding shrank."""
    quick = "│ cached load (last) │ 1.3 s        │\nwritten in 0.1 s\n"
    slow = "│ cached load (last) │ 12.3 s       │\nwritten in 10.5 s\n"
    assert (
        normalise(quick, tmp_path)
        == normalise(slow, tmp_path)
        == ("│ cached load (last) │ <seconds> s │\nwritten in <seconds> s\n")
    )


def test_numbers_match_within_the_tolerance_and_text_exactly() -> None:
    """Rule 2: the issue-8 case (mean_nll's digits past the model's precision) passes, a real change does not."""
    shown = "tokens: 29\nmean_nll: 3.2875161006532867\n"
    assert matches(shown, "tokens: 29\nmean_nll: 3.287517284524852\n", RTOL)
    assert not matches(shown, "tokens: 29\nmean_nll: 3.287517284524852\n")  # fast tier: text
    assert not matches(shown, "tokens: 29\nmean_nll: 3.31\n", RTOL)
    assert not matches(shown, "tokens: 30\nmean_nll: 3.2875161006532867\n", RTOL)
    assert not matches(shown, "tokens: 29\nmean nll: 3.2875161006532867\n", RTOL)
    assert matches("│ perplexity │ 26.78 │\n", "│ perplexity │ 26.79 │\n", RTOL)
    assert matches("error E-204 at 1.5 bar\n", "error E-204 at 1.5 bar\n", RTOL)
    assert not matches("error E-204\n", "error E-205\n", RTOL)


def test_digits_next_to_a_wildcard_are_a_prefix() -> None:
    assert matches('"relevance": 0.79...,\n', '"relevance": 0.7912345,\n', RTOL)
    assert not matches('"relevance": 0.79...,\n', '"relevance": 0.8012345,\n', RTOL)
    assert matches("...\nbot> ...Paris...\n", "hello\nbot> The capital is Paris.\n", RTOL)
    assert not matches("...\nbot> ...Paris...\n", "hello\nbot> Il Coriobella.\n", RTOL)


def test_a_varies_comment_names_the_fragments_of_the_next_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        'Text.\n\n<!-- varies: "Paris", "France", not "5." -->\n```\n$ llmlab generate "Capital?"\nParis.\n```\n\n'
        "<!-- varies -->\n```\n$ llmlab generate Hi --seed 1\nHello!\n```\n\n"
        "```\n$ llmlab generate Hi --greedy\nHello.\n```\n",
        encoding="utf-8",
    )
    first, second, third = read_page(page).examples
    assert (first.varies, second.varies, third.varies) == (
        Varies(("Paris", "France"), ("5.",)),
        Varies(),
        None,
    )
    assert varied_output_problem(first, "The capital is Paris, in France.\n") is None
    assert "no 'France'" in (varied_output_problem(first, "Paris.\n") or "")
    assert "printed '5.'" in (varied_output_problem(first, "Paris, France. 5.\n") or "")
    assert varied_output_problem(second, "Hi there.\n") is None
    assert "printed nothing" in (varied_output_problem(second, "\n") or "")


def test_a_quote_comment_checks_the_answer_is_quoted_in_its_source(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '<!-- varies: quote, "Sources" -->\n```\n$ llmlab rag ask "E-204?" --answer-style extractive\n'
        'a paper jam\n\nSources\n [1] errors.txt\n     "E-204 means a paper jam."\n```\n',
        encoding="utf-8",
    )
    (example,) = read_page(page).examples
    assert example.varies == Varies(("Sources",), (), quote=True)
    source = 'Sources\n [1] errors.txt\n     "Printer error E-204 means a paper\njam in the duplex unit."\n'
    assert varied_output_problem(example, "a paper jam in\nthe duplex unit\n\n" + source) is None
    problem = varied_output_problem(example, "a paper jam at the front\n\n" + source) or ""
    assert "not quoted verbatim in its source" in problem
    assert "not quoted verbatim" in (
        varied_output_problem(example, "I don't know based on the documents.\n") or ""
    )
